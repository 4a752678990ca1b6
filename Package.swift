// swift-tools-version:6.0
import PackageDescription

// Our own targets build with warnings as errors; dependencies build as their authors ship them.
let strict: [SwiftSetting] = [.unsafeFlags(["-warnings-as-errors"])]

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["SwitchboardCommand"]),
        .executable(name: "sb-bench", targets: ["sb-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
    ],
    targets: [
        // rabbitmq-c, Debian's librabbitmq-dev. Only the AMQP module imports it.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .target(
            name: "AMQP",
            dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // RFC 9535 JSONPath over a small JSON value type. Pure.
        .target(name: "JSONPath", swiftSettings: strict),
        // Configuration model, YAML loading and the rule engine. Pure: no broker, no database, no clock of its own.
        .target(
            name: "Rules",
            dependencies: ["JSONPath", "Yams"],
            swiftSettings: strict
        ),
        // The conversation store: protocol, the SQLite backend (embedded default) and PostgreSQL (a fleet).
        .target(
            name: "Store",
            dependencies: [
                "Rules", "JSONPath", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // What every role counts, measures and times (swift-metrics: the process picks the backend), the
        // store's calls timed (MeteredStore), and readiness (what /health/ready answers). No broker, no HTTP.
        .target(
            name: "Telemetry",
            dependencies: [
                "Rules", "Store",
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The roles (intake, worker, the fused `run`, replay, parking, the coordinator, retention) as services,
        // and what they share on the broker: the consumer loop, the topology, the ESB contract's names.
        .target(
            name: "Roles",
            dependencies: [
                "AMQP", "Rules", "Store", "JSONPath", "Telemetry",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The store's server side: the store role answering `sb.store` (StoreServer) and its client in
        // workers of other processes (RemoteStore), over the broker.
        .target(
            name: "StoreRole",
            dependencies: [
                "AMQP", "Rules", "Store", "Roles", "Telemetry",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // What ops scrape and probe: /metrics (swift-metrics through swift-prometheus), /health/live and
        // /health/ready, on a plain HTTP listener of every role (settings.metrics_listen); JSON logs.
        .target(
            name: "Operations",
            dependencies: [
                "Roles", "Telemetry", "Rules", "AMQP", "JSONPath",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The webhook listener (the ingress role): authenticated POSTs published to sb.in as its own broker user.
        .target(
            name: "Ingress",
            dependencies: [
                "AMQP", "Roles", "Rules", "Telemetry", "JSONPath", "Admin",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // REST delivery (the delivery role): an HTTP endpoint's outbound messages sent to its API with
        // async-http-client, each answer published back as an ack.
        .target(
            name: "Delivery",
            dependencies: [
                "AMQP", "Roles", "Rules", "Telemetry", "JSONPath",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The administrator's view: HTTP API, web pages, sign-in. Reads the store through its async interface.
        .target(
            name: "Admin",
            dependencies: [
                "Roles", "Telemetry", "Rules", "Store", "AMQP", "JSONPath",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The wiring: one builder of a process's services for any set of roles (the executable and the tests).
        .target(
            name: "Wiring",
            dependencies: [
                "Roles", "StoreRole", "Telemetry", "Rules", "Admin", "Store", "Operations", "Ingress", "Delivery",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SwitchboardCommand",
            dependencies: [
                "Wiring", "Roles", "StoreRole", "Telemetry", "Rules", "Admin", "Store", "Operations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // `make bench`: load generator, sink and the bare-relay ceiling, all real AMQP clients.
        .executableTarget(
            name: "sb-bench",
            dependencies: [
                "AMQP", "JSONPath", "Rules", "Store", "Roles", "Wiring", "Admin",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JSONPathTests",
            dependencies: ["JSONPath"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(name: "RulesTests", dependencies: ["Rules", "JSONPath"], swiftSettings: strict),
        // The store contract, run against SQLite and against a real PostgreSQL.
        .testTarget(
            name: "StoreTests",
            dependencies: ["Store", "Rules", "JSONPath", .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "PostgresNIO", package: "postgres-nio")],
            exclude: ["Fixtures"],  // read from the source tree (#filePath) by StoreUpgradeTests
            swiftSettings: strict),
        // The roles' handlers with a real store and no broker: concurrency and redelivery.
        .testTarget(
            name: "RolesTests", dependencies: ["Roles", "StoreRole", "Telemetry", "AMQP", "Store", "Rules", "JSONPath"],
            swiftSettings: strict),
        // The admin's pure parts (message states, reason groups, forms, JSON, templates, accounts), its routes
        // in process (authentication and CSRF on every route), its jobs at shutdown.
        .testTarget(
            name: "AdminTests",
            dependencies: [
                "Admin", "Store", "Rules", "Roles", "AMQP", "JSONPath", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),
        // REST delivery's requests and acks per profile, without a network (the ESB tests use a real fake server).
        .testTarget(
            name: "DeliveryTests",
            dependencies: ["Delivery", "Rules", "AMQP", "JSONPath", .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strict),
        // The webhook ingress's authentication, without a listener (the ESB tests post to a real one).
        .testTarget(
            name: "IngressTests", dependencies: ["Ingress", "Rules", "Roles", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // The exposition (HELP lines, names), readiness and the JSON log lines, without a broker.
        .testTarget(name: "OperationsTests", dependencies: ["Operations", "Roles", "Telemetry", "Rules"], swiftSettings: strict),
        // Tests against the real broker started by Deploy/local (make test, .ci/run).
        .testTarget(
            name: "AMQPIntegrationTests",
            dependencies: ["AMQP", "Roles", "Wiring", "Rules", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict),
    ]
)
