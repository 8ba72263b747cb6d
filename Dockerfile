# promcast container image: build on Debian 12, run on Debian 12 slim.
# Builds the same binary as the README's run command (CMake, Release).

FROM debian:bookworm-slim AS build
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        build-essential cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libsnappy-dev \
        libmicrohttpd-dev libcurl4-openssl-dev libyaml-dev libjansson-dev libpcre2-dev \
        libxxhash-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto ./proto
COPY src ./src
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPROMCAST_TESTS=OFF -DPROMCAST_WERROR=ON \
    && cmake --build build -j"$(nproc)" \
    && strip build/promcast

FROM debian:bookworm-slim
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        libsnappy1v5 libmicrohttpd12 libcurl4 libyaml-0-2 libjansson4 \
        libpcre2-8-0 libxxhash0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --home-dir /var/lib/promcast --create-home promcast
COPY --from=build /src/build/promcast /usr/bin/promcast
COPY deploy/promcast.yml /etc/promcast/promcast.yml
USER 65532
WORKDIR /var/lib/promcast
EXPOSE 9201
ENTRYPOINT ["/usr/bin/promcast"]
CMD ["--web.listen-address=:9201"]
