"""OAuth 2.1 sign-in for the HTTP transport (``--auth oauth``): this server is both the
resource server for ``/mcp`` and, in the same process, the authorization server whose
connect page takes an Alternative Payments API key once, checks it, stores it encrypted
and binds it to the grant. Built on the SDK's ``mcp.server.auth`` routes, handlers,
provider protocol and bearer middleware; this package supplies the provider, the
client-id metadata document fetcher, the connect page and the per-grant accounts."""
