"""Model soups: mix trained ingredients into one model (task=soup, selected by soup=<strategy>)."""
