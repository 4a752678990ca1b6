import Foundation
import Testing

@testable import Rules

@Suite struct ConfigErrorTests {
    @Test func brokenYAMLNamesFileAndLine() {
        let errors = configErrors("rules:\n  - name: a\n    send: [\n  oops: {")
        let e = errors.first
        #expect(e?.location.file == "rules.yaml")
        #expect((e?.location.line ?? 0) >= 3)
        #expect(e?.message.contains("invalid YAML") == true)
    }

    @Test func unknownEndpointInARule() {
        let errors = configErrors("rules:\n  - name: a\n    from: crm-z\n    send: [{to: vendor-y, body: {}}]")
        #expect(errors.contains { $0.location == SourceLocation(file: "rules.yaml", line: 3, column: errors.first?.location.column ?? 0) || ($0.location.line == 3 && $0.message.contains("unknown endpoint 'crm-z'")) })
        #expect(errors.contains { $0.location.line == 4 && $0.message.contains("unknown endpoint 'vendor-y'") })
        #expect(errors.allSatisfy { $0.description.hasPrefix("rules.yaml:") })
    }

    @Test func badRegex() {
        let errors = configErrors("rules:\n  - name: a\n    when:\n      - field: $.x\n        regex: \"([unclosed\"\n    send: [{to: vendor-x, body: {}}]")
        #expect(errors.count == 1)
        #expect(errors.first?.location.line == 5)
        #expect(errors.first?.message.contains("invalid regex") == true)
    }

    @Test func missingTranslationTable() {
        let errors = configErrors("rules:\n  - name: a\n    send:\n      - to: vendor-x\n        body: {p: {field: $.p, translate: nope}}")
        #expect(errors.count == 1)
        #expect(errors.first?.location.line == 5)
        #expect(errors.first?.message.contains("unknown translation table 'nope'") == true)
    }

    @Test func invalidJSONPathNamesTheQuery() {
        let errors = configErrors("rules:\n  - name: a\n    when: {field: \"$.a[?@.b ==]\", exists: true}\n    send: [{to: vendor-x, body: {}}]")
        #expect(errors.first?.location.line == 3)
        #expect(errors.first?.message.contains("$.a[?@.b ==]") == true)
    }

    @Test func unknownKeysAndMissingPieces() {
        let errors = configErrors("rules:\n  - name: a\n    sned: []\n  - send: [{to: vendor-x, body: {}}]\n  - name: c\n    when: {field: $.a}\n    send: [{to: vendor-x}]")
        #expect(errors.contains { $0.location.line == 3 && $0.message.contains("unknown key 'sned'") })
        #expect(errors.contains { $0.location.line == 4 && $0.message.contains("needs a 'name'") })
        #expect(errors.contains { $0.location.line == 6 && $0.message.contains("needs an operator") })
    }

    @Test func unsetEnvironmentVariableWithoutDefault() {
        let errors = configErrors("rules:\n  - name: a\n    send: [{to: vendor-x, body: {x: \"${NOT_SET_ANYWHERE}\"}}]")
        #expect(errors.first?.message.contains("NOT_SET_ANYWHERE") == true)
        #expect(errors.first?.location.line == 3)
    }

    @Test func duplicateRuleNames() {
        let errors = configErrors("rules:\n  - {name: a, drop: true}\n  - {name: a, drop: true}")
        #expect(errors.contains { $0.location.line == 3 && $0.message.contains("defined twice") })
    }

    @Test func theShippedExampleConfigurationIsValid() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Config")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") && !$0.hasSuffix("_test.yaml") }.sorted()
        let files = try names.map { ("Config/" + $0, try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)) }
        let cfg = try ConfigLoader.load(files: files, environment: [:])
        #expect(cfg.endpoints.keys.sorted() == ["customer-a", "vendor-x"])
        #expect(cfg.rules.first?.name == "ignore-vendor-worklogs")
        #expect(cfg.settings.maxMessageBytes == 1_048_576)
        #expect(cfg.settings.confirmTimeoutMs == 30_000)
        let quick = try ConfigLoader.load(files: files, environment: ["SB_CONFIRM_TIMEOUT_MS": "2000"])
        #expect(quick.settings.confirmTimeoutMs == 2000)
    }

    @Test func aConfirmTimeoutOutOfRangeIsNamed() {
        let errors = configErrors("settings:\n  confirm_timeout_ms: 5\nrules: []")
        #expect(errors.count == 1)
        #expect(errors.first?.location.line == 2)
        #expect(errors.first?.message == "settings.confirm_timeout_ms: 5 is out of range (100...3600000)")
    }

    /// A delay or a timer must come due before what it waits for (its conversation, its stored outbound
    /// message) is pruned.
    @Test func aWaitLongerThanTheRetentionIsRefused() {
        let errors = configErrors("""
            settings:
              retention_bodies_days: 1
            rules:
              - name: later
                send: [{to: vendor-x, body: {}, delay: 48h}]
              - name: soon
                send: [{to: vendor-x, body: {}, delay: 12h}]
            """)
        #expect(errors.count == 1)
        #expect(errors.first?.location.line == 4)
        #expect(errors.first?.message == "rule 'later' has a delay of 172800 s, not shorter than settings.retention_bodies_days (1 day(s)): what it waits for would be pruned before it comes due")
    }

    /// Store requests must fit in the broker's largest message; an intake's window is bounded by its memory.
    @Test func storeRequestsFitTheBrokerAndTheIntakeFitsItsMemory() throws {
        let errors = configErrors("settings:\n  broker_max_message_bytes: 1048576\n  store_max_request_bytes: 2097152\nrules: []")
        #expect(errors.count == 1)
        #expect(errors.first?.message.hasPrefix("settings.store_max_request_bytes (2097152) is larger than settings.broker_max_message_bytes (1048576)") == true)
        var s = Settings()
        #expect(s.intakePrefetch(queues: 3) == 200)  // no bound by default
        s.intakeMemoryBytes = 256 << 20
        #expect(s.intakePrefetch(queues: 3) == 5)  // 256 MiB / (3 x 16 MiB)
        #expect(s.intakePrefetch(queues: 100) == 1)
        s.brokerMaxMessageBytes = 64 << 10
        #expect(s.intakePrefetch(queues: 3) == 200)  // small messages: the configured prefetch
    }
}
