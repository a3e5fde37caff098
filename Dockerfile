# Portcullis, built from source. Not exercised by CI (no Docker on the build machines).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p portcullis-server --bin portcullis

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/portcullis --create-home portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER portcullis
WORKDIR /var/lib/portcullis
ENV PORTCULLIS_DATA_DIR=/var/lib/portcullis
EXPOSE 8443 8444
ENTRYPOINT ["portcullis"]
CMD ["serve"]
