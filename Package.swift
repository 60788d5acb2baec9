// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "mail-dispatch",
    // Linux only (inotify, epoll, renameat2, glibc): no Apple platform is listed, and none is built.
    products: [
        .executable(name: "mailfcgi", targets: ["MailFCGI"]),
        .executable(name: "mailworkerd", targets: ["MailWorkerd"]),
        .executable(name: "mailctl", targets: ["MailCtl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libcurl (Debian libcurl4-openssl-dev): curl_easy_setopt/getinfo are variadic,
        // so this target adds typed, non-variadic wrappers Swift can call.
        .target(
            name: "CCurl",
            path: "Sources/CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // libpq (Debian libpq-dev): PostgreSQL's client, for the database queue store.
        .target(
            name: "CPostgres",
            path: "Sources/CPostgres",
            linkerSettings: [.linkedLibrary("pq")]
        ),
        // renameat2(2), which Glibc's Swift module does not expose.
        .target(name: "CLinux", path: "Sources/CLinux"),
        // OpenSSL's libcrypto (Debian libssl-dev): digests through one small C function.
        .target(
            name: "CCrypto",
            path: "Sources/CCrypto",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        // The libraries, one folder each under Sources/Core, from the bottom up. Each depends
        // only on what it uses; the README's "How it fits together" draws the same graph.
        .target(
            name: "Platform",  // system calls, atomic files, threads, sockets, lifecycle
            dependencies: [
                "CLinux",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Core/Platform"
        ),
        .target(
            name: "Digest",  // SHA-256 from libcrypto
            dependencies: ["CCrypto"],
            path: "Sources/Core/Digest"
        ),
        .target(
            name: "MailModel",  // the email as stored, addresses, headers, ids, timestamps
            dependencies: ["Platform"],
            path: "Sources/Core/Model"
        ),
        .target(
            name: "Composition",  // RFC 5322 / MIME messages from a stored email
            dependencies: ["MailModel"],
            path: "Sources/Core/Composition"
        ),
        .target(
            name: "DKIM",  // DKIM signatures (RFC 6376, 8463) with libcrypto
            dependencies: ["CCrypto"],
            path: "Sources/Core/DKIM"
        ),
        .target(
            name: "Queue",  // the file queue: states, claims, recovery, census, watcher, idempotency keys
            dependencies: [
                "MailModel", "Platform", "Digest",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            path: "Sources/Core/Queue"
        ),
        .target(
            name: "PostgresQueue",  // the queue in PostgreSQL, for several hosts (libpq)
            dependencies: [
                "CPostgres", "MailModel", "Platform", "Queue",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Core/PostgresQueue"
        ),
        .target(
            name: "QueueStores",  // opens the store QUEUE_STORE chooses
            dependencies: [
                "Queue", "PostgresQueue", "Settings", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Core/QueueStores"
        ),
        .target(
            name: "Status",  // mailworkerd's status file, read by mailfcgi
            dependencies: ["MailModel", "Queue", "Platform"],
            path: "Sources/Core/Status"
        ),
        .target(
            name: "Templates",  // the template store and Mustache rendering
            dependencies: [
                "MailModel", "Platform",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            path: "Sources/Core/Templates"
        ),
        .target(
            name: "Delivery",  // policy, pause, agent, the transport protocol, the file transport
            dependencies: [
                "MailModel", "Composition", "Queue", "Status", "Platform", "DKIM",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Core/Delivery"
        ),
        .target(
            name: "Settings",  // every setting, from the environment and .env
            dependencies: [
                "MailModel", "Queue", "Delivery", "DKIM",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Configuration", package: "swift-configuration"),
            ],
            path: "Sources/Core/Settings"
        ),
        .target(
            name: "LogFiles",  // swift-log to rotated files
            dependencies: ["Settings", "Platform", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Core/LogFiles"
        ),
        .target(
            name: "FastCGI",  // the FastCGI 1.0 responder protocol and server; knows no JSON or routes
            dependencies: [
                "Platform", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Sources/Core/FastCGI"
        ),
        .target(
            name: "SMTP",  // delivery over SMTP with libcurl; only mailworkerd links it
            dependencies: ["CCurl", "Delivery", "Composition", "MailModel", "Settings"],
            path: "Sources/Core/SMTP"
        ),
        .executableTarget(
            name: "MailFCGI",
            dependencies: [
                "MailModel", "Composition", "Queue", "QueueStores", "Status", "Templates", "Settings", "LogFiles",
                "Platform",
                "FastCGI", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/MailFCGI",
            // The API's description, one committed file (scripts/openapi.py writes it).
            resources: [.embedInCode("OpenAPI/openapi.json")]
        ),
        .executableTarget(
            name: "MailWorkerd",
            dependencies: [
                "MailModel", "Composition", "Queue", "QueueStores", "Status", "Delivery", "SMTP", "Settings",
                "LogFiles", "DKIM",
                "Platform", "CLinux", "Digest",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/MailWorkerd"
        ),
        // The operator's command: the queue store's administration operations, no daemon needed.
        .executableTarget(
            name: "MailCtl",
            dependencies: [
                "MailModel", "Composition", "Queue", "QueueStores", "PostgresQueue", "Settings",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/MailCtl"
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: [
                "Digest", "MailModel", "Composition", "Queue", "Status", "Templates", "Delivery", "SMTP", "Settings",
                "DKIM",
                "LogFiles", "Platform",
            ],
            path: "Tests/CoreTests"
        ),
        // The FastCGI library in process: records to requests, and what it answers by itself.
        .testTarget(name: "FastCGITests", dependencies: ["FastCGI"], path: "Tests/FastCGITests"),
        // The responder's own parts in process (routing; the socket and threads end to end).
        .testTarget(
            name: "MailFCGITests",
            dependencies: [
                "MailFCGI", "FastCGI", "MailModel", "Settings", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/MailFCGITests"
        ),
    ]
)

// Benchmarks (bench/): only with MAIL_BENCH set, as `make bench` sets it, so that `make run`
// and `make test` build only what they run.
if Context.environment["MAIL_BENCH"] != nil {
    package.targets += [
        .executableTarget(
            name: "claims-bench",
            dependencies: [
                "MailModel", "Queue", "PostgresQueue", "CLinux", .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/QueueBench"
        ),
        .executableTarget(
            name: "compose-bench",
            dependencies: ["MailModel", "Composition", "Templates", "DKIM"],
            path: "bench/ComposeBench"
        ),
        .executableTarget(
            name: "lookup-bench",
            dependencies: ["MailModel", "Queue"],
            path: "bench/LookupBench"
        ),
        .executableTarget(
            name: "durable-file-bench",
            dependencies: ["Platform"],
            path: "bench/DurableFileBench"
        ),
    ]
}
