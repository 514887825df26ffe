# QService container: gRPC on 50051, management (/healthz, /readyz, /metrics) on 8080.
#   CPU (default):  docker build -t qservice .
#   CUDA:           docker build --build-arg TORCH_BACKEND=cuda -t qservice:cuda .
#                   (needs the TorchSharp-cuda-linux NuGet package to be reachable, and `docker run --gpus all`)
# The runtime image is Ubuntu 24.04 ("noble"), whose libstdc++ TorchSharp accepts as is.
ARG TORCH_BACKEND=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_BACKEND
WORKDIR /src
COPY . .
RUN dotnet publish src/QService.Host/QService.Host.csproj -c Release -o /app -p:TorchBackend=${TORCH_BACKEND} \
 && dotnet publish src/QService.Cli/QService.Cli.csproj -c Release -o /app/cli -p:TorchBackend=${TORCH_BACKEND}

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble
# curl serves the HEALTHCHECK; nothing else is added to the base image.
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
# The demo models, when present in the build context, travel inside the image.
COPY models /app/models
ENV QSERVICE__SERVER__BINDADDRESS=0.0.0.0 \
    QSERVICE__SERVER__GRPCPORT=50051 \
    QSERVICE__SERVER__HTTPPORT=8080 \
    QSERVICE__SERVER__HTTPAPIPORT=50052 \
    QSERVICE__SERVER__LOGFORMAT=json \
    ASPNETCORE_HTTP_PORTS=
EXPOSE 50051 50052 8080
# The image's built-in non-root user.
USER $APP_UID
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["dotnet", "/app/QService.Host.dll"]
