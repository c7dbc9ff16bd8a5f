# invoice-mcp over streamable HTTP on 0.0.0.0:8000 (/mcp, /health), as a non-root user.
#
#   docker build -t invoice-mcp .
#   docker run --rm -p 8000:8000 -e INVOICE_MCP_HTTP_TOKEN="$(openssl rand -hex 32)" \
#     -e AP_CLIENT_ID=... -e AP_CLIENT_SECRET=... invoice-mcp
#   ... invoice-mcp --transport http --host 0.0.0.0 --allowed-host mcp.example.com   (behind a DNS name)
#   (or -e INVOICE_MCP_GATEWAY=1 instead of the AP_* key: every request brings its own credentials)
#
# The server refuses a non-loopback bind without INVOICE_MCP_HTTP_TOKEN (32+ characters): the image
# holds no token and no credentials; they come at run time (-e, --env-file, an orchestrator secret).
# Arguments after the image name replace CMD; keep --transport http --host 0.0.0.0 when adding some.
# PIP_OPTIONS lets an offline build install from a wheel directory inside the context
# (e.g. --build-arg PIP_OPTIONS="--no-index --find-links /src/wheels").
ARG PYTHON_IMAGE=docker.io/library/python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_OPTIONS=""
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/invoice-mcp \
 && /opt/invoice-mcp/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_OPTIONS} . \
 && /opt/invoice-mcp/bin/pip uninstall -y --disable-pip-version-check pip \
 && find /opt/invoice-mcp -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
LABEL io.modelcontextprotocol.server.name="io.github.invoice-mcp/invoice-mcp" \
      org.opencontainers.image.title="invoice-mcp" \
      org.opencontainers.image.description="MCP server for Alternative Payments invoices (streamable HTTP)" \
      org.opencontainers.image.source="https://github.com/invoice-mcp/invoice-mcp" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 invoice-mcp \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin invoice-mcp
COPY --from=build /opt/invoice-mcp /opt/invoice-mcp
ENV PATH="/opt/invoice-mcp/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["invoice-mcp"]
CMD ["--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
