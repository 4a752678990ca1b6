import ArgumentParser
import Foundation
import JSONPath
import Logging
import Roles
import Rules
import Store
import Wiring

/// `switchboard rules ...`: working on the rules without a broker or a store.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "Test the rules of a configuration.", subcommands: [Test.self, Try.self, LintCommand.self, CaptureCommand.self, ReplayCommand.self])

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the rule tests (every *_test.yaml) of a configuration directory through the real engine.",
            discussion: """
                No broker, no store: each test starts a conversation in the state it gives, at a frozen clock, \
                and plays its steps (messages, answers, time passing). Exits 1 when a test fails, naming the \
                test, the step and the difference.
                """)

        @Argument(help: "Configuration directory.")
        var directory: String = "Config"

        @Option(help: "Also write the results as JUnit XML to this file.")
        var junit: String?

        func run() async throws {
            let config = try loadConfigOrExit(directory)
            let results = try runRuleTests(directory, config: config, junit: junit)
            if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
            if results.isEmpty { print("switchboard: no rule tests (*_test.yaml) in \(directory)") }
        }
    }
}

extension RulesCommand {
    struct Try: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What one message would do: each rule (matched, or why not), what it would send and change. Changes nothing.",
            discussion: """
                Against a new conversation, or with --conversation against a stored one's real state (read from \
                the store `store_url` names; nothing is written, nothing is sent).
                """)

        @Option(name: .long, help: "Configuration directory.")
        var config: String = "Config"

        @Option(help: "A file with the message's body (JSON), as the ESB would publish it.")
        var message: String

        @Option(help: "The endpoint it comes from (default: the one endpoint whose ticket_id finds a value in it).")
        var endpoint: String?

        @Option(help: "The message's AMQP type, when the ESB sets one.")
        var type: String?

        @Option(help: "A stored conversation's id: decide against its attributes, counters and references.")
        var conversation: String?

        func run() async throws {
            let cfg = try loadConfigOrExit(config)
            let body: JSON
            do {
                body = try JSON.parse(try Data(contentsOf: URL(fileURLWithPath: message)))
            } catch {
                throw ValidationError("--message \(message): \(error)")
            }
            let engine = Engine(config: cfg)
            guard let endpoint = endpoint ?? engine.guessEndpoint(of: body) else {
                throw ValidationError("name the endpoint the message comes from (--endpoint \(cfg.endpoints.keys.sorted().joined(separator: "|"))): "
                    + "not exactly one endpoint's ticket_id finds a value in it")
            }
            var snapshot = ConversationSnapshot(id: "(new)")
            if let id = conversation {
                let found = try await Stores.with(cfg, logger: Logger(label: "switchboard")) { store in
                    try await Offload.run { try store.conversation(id: id) }
                }
                guard let found else { throw ValidationError("no conversation \(id) in \(Setup.storeDescription(cfg))") }
                snapshot = found
            }
            for line in engine.trace(endpoint: endpoint, type: type, body: body, conversation: snapshot, now: Date()) { print(line) }
        }
    }
}

extension RulesCommand {
    struct LintCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lint",
            abstract: "Find what a valid configuration most likely got wrong: rules that never match, timers never handled, names that do not meet.",
            discussion: "Exits 1 when it finds an error, and with --strict on a warning too.")

        @Argument(help: "Configuration directory.")
        var directory: String = "Config"

        @Flag(help: "Exit 1 on warnings too.")
        var strict = false

        @Flag(help: "Also check the translations against the messages the store recorded (--since): keys that never occurred, values with no key.")
        var history = false

        @Option(help: "With --history: the messages of this last while, e.g. 30d, 12h (default 30d).")
        var since = "30d"

        @Option(help: "With --history: at most this many recorded messages.")
        var limit = 100_000

        func run() async throws {
            let config = try loadConfigOrExit(directory)
            var extra: [LintFinding] = []
            if history {
                let cutoff = Date().addingTimeInterval(-(try parseSince(since)))
                let limit = self.limit
                let samples = try await Stores.with(config, logger: Logger(label: "switchboard")) { store in
                    try await Stores.recordedMessages(store, since: cutoff, limit: limit)
                }
                print("switchboard: lint: checked the translations against \(samples.count) message(s) recorded since \(since) ago")
                extra = Lint.history(config, samples: samples)
            }
            if lintFails(config, strict: strict, extra: extra) { throw ExitCode(1) }
        }
    }
}

extension RulesCommand {
    struct CaptureCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "capture",
            abstract: "Write a rule test from a real conversation: its messages, the rules that matched, what was sent.",
            discussion: """
                The conversation's id is the one `switchboard timeline` prints. The test passes against the \
                configuration that decided the conversation and fails, naming the rule, once a rule, mapping or \
                translation it used changes. Fields named in endpoints.<name>.personal are redacted.
                """)

        @Option(name: .long, help: "Configuration directory (for the store's location and the personal fields).")
        var config: String = "Config"

        @Argument(help: "The conversation's id.")
        var conversation: String

        @Option(help: "The test's name (default: captured <id>).")
        var name: String?

        @Option(help: "Write to this file (refuses to overwrite one), e.g. Config/captured_test.yaml; default: standard output.")
        var output: String?

        func run() async throws {
            let cfg = try loadConfigOrExit(config)
            let id = conversation
            let (_, timeline, bodies) = try await Stores.with(cfg, logger: Logger(label: "switchboard")) { store in
                try await Offload.run { try Stores.recorded(store, ids: [id])[0] }
            }
            guard !timeline.isEmpty else { throw ValidationError("no conversation \(id) in \(Setup.storeDescription(cfg))") }
            let text: String
            do {
                text = try Capture.test(
                    name: name ?? "captured \(id)", timeline: timeline, sentBodies: bodies, personal: cfg.endpoints.mapValues(\.personal))
            } catch {
                var err = FileHandle.standardError
                print("switchboard: conversation \(id) cannot be captured: \(error.description)", to: &err)
                throw ExitCode(1)
            }
            guard let output else { return print(text, terminator: "") }
            guard !FileManager.default.fileExists(atPath: output) else { throw ValidationError("\(output) exists: choose another file") }
            try text.write(toFile: output, atomically: true, encoding: .utf8)
            print("switchboard: wrote \(output)")
        }
    }
}

extension RulesCommand {
    struct ReplayCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Re-run recorded conversations against a candidate configuration and report what would differ.",
            discussion: """
                Reads the store of the running configuration (--config) and changes nothing: no broker, no store \
                writes. Each conversation is played from its first recorded message; one whose beginning was \
                pruned or whose bodies were not kept is listed as not replayable. Exits 1 when any conversation \
                would differ (with the running configuration as the candidate: a determinism check).
                """)

        @Option(name: .long, help: "The running configuration (for the store's location).")
        var config: String = "Config"

        @Option(help: "The candidate configuration directory.")
        var candidate: String

        @Option(help: "Only conversations with a message in this last while, e.g. 7d, 12h, 30m (default: all).")
        var since: String?

        @Option(help: "Only this conversation.")
        var conversation: String?

        func run() async throws {
            let running = try loadConfigOrExit(config)
            let candidateConfig = try loadConfigOrExit(candidate)
            let cutoff = try since.map { Date().addingTimeInterval(-(try parseSince($0))) }
            let only = conversation, since = cutoff
            let report = try await Stores.with(running, logger: Logger(label: "switchboard")) { store in
                let ids: [String]
                if let only { ids = [only] } else { ids = try await store.conversationIds(changedSince: since) }
                return try await Stores.replay(store, ids: ids, candidate: candidateConfig, since: since, running: running)
            }
            for (id, differences) in report.differing {
                print("DIFFERS conversation \(id)")
                for d in differences { print("  \(d)") }
            }
            for (id, why) in report.notReplayable { print("NOT REPLAYABLE conversation \(id): \(why)") }
            for (rule, n) in report.byRule.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
                print("rule '\(rule)': \(n) conversation(s) would differ")
            }
            print("switchboard: replayed \(report.replayed) conversation(s), \(report.messages) message(s) against \(candidate): "
                + "\(report.differing.count) would differ, \(report.notReplayable.count) not replayable")
            if !report.differing.isEmpty { throw ExitCode(1) }
        }
    }
}

/// `7d`, `12h`, `30m`, `45s` in seconds.
func parseSince(_ since: String) throws -> TimeInterval {
    let units: [Character: Double] = ["d": 86_400, "h": 3_600, "m": 60, "s": 1]
    guard let unit = since.last.flatMap({ units[$0] }), let n = Double(since.dropLast()), n > 0 else {
        throw ValidationError("--since \(since): expected a number and d, h, m or s, e.g. 7d")
    }
    return n * unit
}

/// Prints the lint findings (file:line: severity: what (suggestion)) and a summary; true when they fail.
func lintFails(_ config: SwitchboardConfig, strict: Bool, extra: [LintFinding] = []) -> Bool {
    let findings = Lint.check(config) + extra
    var err = FileHandle.standardError
    for f in findings { print(f.description, to: &err) }
    let errors = findings.filter { $0.severity == .error }.count
    print("switchboard: lint: \(errors) error(s), \(findings.count - errors) warning(s)")
    return errors > 0 || (strict && !findings.isEmpty)
}

/// Loads and runs a directory's rule tests, printing each failure and a summary line; test files that do
/// not load exit 1 with their errors.
func runRuleTests(_ directory: String, config: SwitchboardConfig, junit: String? = nil) throws -> [RuleTestResult] {
    var err = FileHandle.standardError
    let cases: [RuleTestCase]
    do {
        cases = try Setup.loadRuleTests(directory: directory)
    } catch let errors as ConfigErrors {
        print("switchboard: the rule tests in \(directory) have \(errors.errors.count) error(s):", to: &err)
        for e in errors.errors { print("  \(e)", to: &err) }
        throw ExitCode(1)
    }
    let results = RuleTestRunner(config: config).run(cases)
    for r in results where !r.passed {
        print("FAIL \(r.name) (\(r.location))", to: &err)
        for f in r.failures { print("  \(f)", to: &err) }
    }
    if let junit {
        try RuleTestRunner.junit(results, suite: "switchboard rules test \(directory)").write(toFile: junit, atomically: true, encoding: .utf8)
    }
    let failed = results.filter { !$0.passed }.count
    if !cases.isEmpty {
        print("switchboard: rule tests: \(results.count - failed) passed, \(failed) failed")
    }
    return results
}
