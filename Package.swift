// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "mail-dispatch",
    // Linux only (inotify, epoll, renameat2, glibc): no Apple platform is listed, and none is built.
    products: [
        .executable(name: "mailfcgi", targets: ["MailFCGI"]),
        .executable(name: "mailworkerd", targets: ["MailWorkerd"]),
        .library(name: "Core", targets: ["Core"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // libcurl (Debian libcurl4-openssl-dev): curl_easy_setopt/getinfo are variadic,
        // so this target adds typed, non-variadic wrappers Swift can call.
        .target(
            name: "CCurl",
            path: "Sources/CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // renameat2(2), which Glibc's Swift module does not expose.
        .target(name: "CLinux", path: "Sources/CLinux"),
        .target(
            name: "Core",
            dependencies: [
                "CCurl", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Core"
        ),
        .executableTarget(
            name: "MailFCGI",
            dependencies: [
                "Core", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Sources/MailFCGI"
        ),
        .executableTarget(
            name: "MailWorkerd",
            dependencies: [
                "Core", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/MailWorkerd"
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: ["Core"],
            path: "Tests/CoreTests"
        ),
    ]
)

// Benchmarks (bench/): only with MAIL_BENCH set, as `make bench` sets it, so that `make run`
// and `make test` build only what they run.
if Context.environment["MAIL_BENCH"] != nil {
    package.targets += [
        .executableTarget(
            name: "claims-bench",
            dependencies: ["Core"],
            path: "bench/QueueBench"
        ),
        .executableTarget(
            name: "compose-bench",
            dependencies: ["Core"],
            path: "bench/ComposeBench"
        ),
        .executableTarget(
            name: "durable-file-bench",
            dependencies: ["Core"],
            path: "bench/DurableFileBench"
        ),
    ]
}
