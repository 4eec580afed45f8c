# Builds the roomcast server (used by docker-compose.yml).
FROM rust:1-bookworm AS build
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
