import AMQP
import Crypto
import Foundation
import JSONPath
import Logging
import Rules
import ServiceLifecycle
import Store
import Synchronization

/// What every process sets up from its configuration: the configuration itself, the broker's connection
/// options, where its store is, and the services of the intake and worker roles (built into a process by the
/// Wiring module's `ServiceBuilder`; the store is opened there, `Stores`, and the store role's services are
/// `StoreServer.services`).
package enum Setup {
    /// A rule test file (`*_test.yaml`): not configuration, left out of it and of its hash.
    package static func isTestFile(_ name: String) -> Bool {
        name.hasSuffix("_test.yaml") || name.hasSuffix("_test.yml")
    }

    /// The rule tests of a configuration directory: every `*_test.yaml` in it, sorted by name; a
    /// `body_file` is read relative to the test file's folder.
    package static func loadRuleTests(
        directory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [RuleTestCase] {
        let all = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        // Test files, and the configuration files, whose `tests:` sections (inline tests) count too.
        let configuration = all.filter { !isTestFile($0) && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
        let files = try read(all.filter(isTestFile) + configuration, in: directory)
        let inline = Set(configuration.map { (directory as NSString).appendingPathComponent($0) })
        return try ConfigLoader.loadTests(files: files, environment: environment, inline: inline) { testFile, path in
            let full = path.hasPrefix("/") ? path : ((testFile as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
            return try String(contentsOfFile: full, encoding: .utf8)
        }
    }

    /// The named files of a directory as (path, text), or an error naming the one that cannot be read.
    private static func read(_ names: [String], in directory: String) throws(ConfigErrors) -> [(name: String, text: String)] {
        var files: [(name: String, text: String)] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            do {
                files.append((path, try String(contentsOfFile: path, encoding: .utf8)))
            } catch {
                throw ConfigErrors(errors: [ConfigError(SourceLocation(file: path, line: 0), "cannot read: \(error.localizedDescription)")])
            }
        }
        return files
    }

    /// Reads every *.yaml / *.yml file of a directory (sorted by name; not the rule tests, `*_test.yaml`)
    /// and validates the whole.
    package static func loadConfig(
        directory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SwitchboardConfig {
        let url = URL(fileURLWithPath: directory)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path)
                .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !isTestFile($0) }.sorted()
        } catch {
            throw ConfigErrors(errors: [ConfigError(SourceLocation(file: directory, line: 0), "cannot read the configuration directory: \(error.localizedDescription)")])
        }
        guard !names.isEmpty else {
            throw ConfigErrors(errors: [ConfigError(SourceLocation(file: directory, line: 0), "no .yaml files in the configuration directory")])
        }
        let files = try read(names, in: directory)
        var config = try ConfigLoader.load(files: files, environment: environment)
        // Names and contents, not where the directory is: the same configuration hashes the same on every machine.
        var hash = SHA256()
        for file in files {
            hash.update(data: Data((file.name as NSString).lastPathComponent.utf8))
            hash.update(data: Data([0]))
            hash.update(data: Data(file.text.utf8))
            hash.update(data: Data([0]))
        }
        config.source.files = files.map(\.name)
        config.source.contentHash = hash.finalize().map { String(format: "%02x", $0) }.joined()
        config.source.loadedAt = Date()
        return config
    }

    package static func brokerOptions(_ config: SwitchboardConfig) throws -> ConnectionOptions {
        var options = try ConnectionOptions(url: config.settings.brokerURL, caFile: config.settings.tlsCAFile)
        options.heartbeatSeconds = config.settings.heartbeatSeconds
        return options
    }

    package static func sqlitePath(_ config: SwitchboardConfig) -> String {
        let url = config.settings.storeURL
        if url.hasPrefix("sqlite:"), url.count > "sqlite:".count { return String(url.dropFirst("sqlite:".count)) }
        return (config.settings.dataDir as NSString).appendingPathComponent("switchboard.sqlite")
    }

    /// The backend label of the store metrics.
    package static func storeBackend(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("postgres") ? "postgres" : "sqlite"
    }

    /// The store for a log line: the SQLite file, or the PostgreSQL URL without its password.
    package static func storeDescription(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("sqlite") ? sqlitePath(config) : ConnectionOptions.redact(config.settings.storeURL)
    }

    /// Intake sharing the inbound queues with the other live intakes (through the store's membership). With
    /// `local` (`switchboard run`), it evaluates the messages of this process's partitions where they arrive.
    package static func coordinatedIntakeService(
        config: SwitchboardConfig, store: FleetStore, local: LocalPartitions?, options: ConnectionOptions, logger: Logger
    ) -> RoleService {
        RoleService(name: "intake") { flag in
            Coordinator.intakes(config: config, store: store, options: options, logger: logger) { queues in
                if let local {
                    return FusedIntakeHandler(
                        config: config, store: store, local: local, threads: config.settings.workers, logger: logger, queues: queues)
                }
                return IntakeHandler(config: config, logger: logger, queues: queues)
            }.run(stop: flag)
        }
    }

    /// One worker thread for the given partitions. Each partition has exactly one consumer in the
    /// process, so one ticket's messages stay in order whatever the number of threads.
    package static func workerService(
        config: SwitchboardConfig, store: FleetStore, options: ConnectionOptions, logger: Logger,
        partitions: [Int], name: String = "worker"
    ) -> RoleService {
        RoleService(name: name) { flag in
            let handler = WorkerHandler(config: config, store: store, partitions: partitions, logger: logger)
            ConsumerLoop(name: name, config: config, options: options, handler: handler, stopFlag: flag, logger: logger).run()
        }
    }

    /// Two `switchboard run` with SQLite stores of their own on one vhost would split conversations: each
    /// decides on its own file, and whichever consumes a partition's queue applies the ticket's next update
    /// to a conversation the other holds. So `run` does not start while another store serves `sb.store`
    /// (waiting a few seconds for one that is shutting down). A second process on the *same* store is a
    /// `switchboard store` standby, which waits instead; a fleet shares one PostgreSQL store.
    package static func refuseASecondEmbeddedStore(_ config: SwitchboardConfig, logger: Logger, patience: TimeInterval = 10) async throws {
        let options = try brokerOptions(config)
        let deadline = Date().addingTimeInterval(patience)
        while true {
            let consumers: Int = try await Offload.run {
                let c = try Connection(options, logger: logger)
                defer { c.close() }
                try Topology.declareStoreQueue(on: c, queueType: config.settings.queueType)
                return try c.queueDepth(Contract.storeQueue).consumers
            }
            if consumers == 0 { return }
            if Date() >= deadline {
                throw StartRefused(
                    "another Switchboard store already serves '\(Contract.storeQueue)' on this broker's vhost: a second "
                        + "`switchboard run` with its own SQLite store (\(sqlitePath(config))) would split conversations between "
                        + "the two files. Stop the other one, give this one a vhost of its own (broker_url), or run "
                        + "`switchboard worker`/`intake` beside the running store")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Status lines for the person who started us, written unbuffered so they show at once in a pipe or log;
/// with settings.log_format `json`, as JSON objects like the log's (a log shipper reads both streams).
package func say(_ line: String) {
    var text = line
    if StatusLines.json.load(ordering: .relaxed) {
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        text = #"{"time":"\#(time)","level":"notice","label":"switchboard","message":\#(JSON.string(line).serializedString)}"#
    }
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

package enum StatusLines {
    package static let json = Atomic<Bool>(false)
}

/// Why a process would not start, for the operator.
package struct StartRefused: Error, CustomStringConvertible {
    package var description: String
    package init(_ d: String) { description = d }
}
