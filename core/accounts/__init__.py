"""Accounts: the people who run campaignkit (users.py), what each role may do (roles.py), and their personal API
tokens (tokens.py). Every change to an account or a token is audited in its own transaction."""
