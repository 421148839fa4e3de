"""The web console: server-rendered pages under `/console` on the HTTP API's app.

- `app`: the router (sign-in, sign-out, the pages' routers, the static assets);
- `session`: sign-in sessions and their CSRF tokens (pure, taking `now`);
- `pages`: what every page handler uses (the signed-in caller, rendering, form checks);
- `assets`: where the front-end packages are (npm, pinned by `assets/package-lock.json`);
- `keys_pages`, `key_detail_page`, `alerts_pages`: one module per page.
"""
