# statusd container image.
#
#   docker build -t statusd --build-arg STATUSD_COMMIT=$(git rev-parse --short HEAD) .
#   docker run -p 8080:8080 -v statusd-data:/app/data statusd   # example config, SQLite
#
# statusd is built with profile-guided optimisation (scripts/pgo-build: an instrumented build,
# a training run of the load tool inside the builder, the optimised build; README, Benchmarks,
# "A profile-guided build"): 1 to 18 % less CPU per probe, the most where assets are probed
# often, for two release builds instead of one. `--build-arg PGO=0` builds plainly, in half the
# time.
#
# Dependencies are compiled in a layer of their own (cargo-chef), so a change to src/ rebuilds
# only statusd itself (with PGO=1 the layer holds them instrumented, as the first build needs).
# The runtime image is distroless (glibc, libgcc, CA certificates; no shell) and runs as the
# unprivileged user `nonroot`.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

# The dependency graph only (Cargo.toml, Cargo.lock, dummy targets): unchanged until they change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# The crates Cargo.toml's [patch.crates-io] builds from vendor/ (vendor/README.md) are
# dependencies too, but the recipe carries only the root manifest: without them here, cook
# fails to load them.
COPY vendor/ vendor/
ARG PGO=1
# With PGO=1, cooked as scripts/pgo-build's instrumented build asks (same flags, target and
# directory), so that build finds them here; llvm-profdata comes with rustup's llvm-tools.
RUN if [ "$PGO" = 1 ]; then \
        rustup component add llvm-tools \
        && RUSTFLAGS="-Cprofile-generate=/build/target/pgo/profiles" cargo chef cook --release --locked \
            --target "$(rustc -vV | sed -n 's/^host: //p')" --target-dir target/pgo/instrumented \
            --recipe-path recipe.json; \
    else \
        cargo chef cook --release --locked --recipe-path recipe.json; \
    fi
COPY . .
# Baked into the binary: GET /api/version and statusd_build_info{commit}. Images are built
# without .git, so the commit comes from here (build.rs asks git only when this is empty).
ARG STATUSD_COMMIT=unknown
ENV STATUSD_COMMIT=$STATUSD_COMMIT
# /out/app/data: the SQLite default's directory, made here since distroless has no shell.
RUN mkdir -p /out/usr/local/bin /out/app/data \
    && if [ "$PGO" = 1 ]; then \
        scripts/pgo-build --out /out/usr/local/bin/statusd; \
    else \
        cargo build --release --locked --bin statusd \
        && install -m 0755 target/release/statusd /out/usr/local/bin/statusd; \
    fi

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=builder /out/usr/local/bin/statusd /usr/local/bin/statusd
# /out/app/ holds only data/: copied as an entry of its own, so the chown applies to it.
COPY --from=builder --chown=nonroot:nonroot /out/app/ /app/
# The example config, read from /app/config (statusd runs in /app); mount your own over it.
# Migrations are compiled into the binary (sqlx::migrate!).
COPY config/ /app/config/
USER nonroot:nonroot
ENV STATUSD_LISTEN=0.0.0.0:8080 \
    STATUSD_DB=sqlite:///app/data/statusd.db \
    STATUSD_LOG_FORMAT=json
EXPOSE 8080
# GET /healthz on the listen address (0.0.0.0 is asked on 127.0.0.1), 3 s timeout: exit 0 on 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/statusd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/statusd"]
CMD ["run"]
