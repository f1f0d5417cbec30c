"""The site's pages, one module per area: chat, history, API tokens, accounts, health."""
