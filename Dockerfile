# Builds the roomcast server (used by docker-compose.yml).
FROM rust:1-bookworm AS build
# The browser demos are bundled by server/build.rs with Node 20+ and npm.
COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm-slim /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin roomcast

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/roomcast roomcast && mkdir -p /var/lib/roomcast && chown roomcast /var/lib/roomcast
COPY --from=build /src/target/release/roomcast /usr/local/bin/roomcast
USER roomcast
WORKDIR /var/lib/roomcast
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/roomcast"]
