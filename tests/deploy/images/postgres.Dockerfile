# A stand-in for the public `postgres:15-bookworm` image, for the compose test on machines
# that reach no image registry: Debian's postgresql-15 on the locally imported
# debian:bookworm-slim, with an entry point that honours the same variables as the public
# image does for docker-compose.yml (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA).
# Built by tests/deploy/up.rs only when no image of that name exists.
FROM debian:bookworm-slim
# No cluster from the package: the entry point makes one in the volume.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
# Fast shutdown, as the public image: `docker stop` does not wait for clients to leave.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
