"""Code the four kriselogg services share: contracts, plumbing, never a service's logic."""
