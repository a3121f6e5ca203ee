"""The contract between store and hub: envelopes, event bodies, subjects and event ids."""
