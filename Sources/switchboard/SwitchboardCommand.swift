import ArgumentParser
import Foundation
import Logging
import Rules
import Switchboard

@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "An ITSM integration hub on RabbitMQ.",
        subcommands: [Run.self, ConfigCommand.self, Timeline.self])
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration directory (every .yaml file in it).")
    var config: String = "Config"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["SB_LOG_LEVEL"] ?? "info"

    func logger(_ label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

/// Loads the configuration or prints every error (file:line: message) and exits 1.
func loadConfigOrExit(_ directory: String) throws -> SwitchboardConfig {
    do {
        return try Application.loadConfig(directory: directory)
    } catch let errors as ConfigErrors {
        var err = FileHandle.standardError
        print("switchboard: the configuration in \(directory) has \(errors.errors.count) error(s):", to: &err)
        for e in errors.errors { print("  \(e)", to: &err) }
        throw ExitCode(1)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every role (intake, worker, store) in one process.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard")
        try await Application.runAll(config: config, logger: logger)
    }
}

struct Timeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a conversation: its tickets, attributes, counters and timeline.",
        discussion: "Find it by any endpoint's ticket id, e.g. `switchboard timeline customer-a INC0010001`.")

    @Argument(help: "The endpoint whose ticket id you have.") var endpoint: String
    @Argument(help: "The ticket id at that endpoint.") var ticket: String
    @Option(name: .long, help: "Configuration directory (for the store's location).") var config: String = "Config"

    func run() async throws {
        let cfg = try loadConfigOrExit(config)
        guard let text = try Application.describeConversation(config: cfg, endpoint: endpoint, ticket: ticket) else {
            var err = FileHandle.standardError
            print("switchboard: no conversation has \(endpoint)/\(ticket)", to: &err)
            throw ExitCode(1)
        }
        print(text)
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with the configuration.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a configuration directory and print every error.")

        @Argument(help: "Configuration directory.")
        var directory: String = "Config"

        func run() async throws {
            let config = try loadConfigOrExit(directory)
            print("switchboard: \(directory) is valid: \(config.endpoints.count) endpoint(s), \(config.rules.count) rule(s), \(config.translations.count) translation table(s)")
        }
    }
}

extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) {
        self.write(Data(string.utf8))
    }
}
