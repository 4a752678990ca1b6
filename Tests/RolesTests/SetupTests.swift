import Foundation
import Testing

@testable import Roles
@testable import Rules

/// Loading a configuration directory: rule tests (`*_test.yaml`) beside it are not configuration.
@Suite struct SetupTests {
    @Test func ruleTestFilesAreNeitherConfigurationNorPartOfItsHash() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-setup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let shipped = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("Config").path)
        for name in shipped where !Setup.isTestFile(name) {
            try FileManager.default.copyItem(at: repo.appendingPathComponent("Config/\(name)"), to: dir.appendingPathComponent(name))
        }
        let without = try Setup.loadConfig(directory: dir.path, environment: [:])
        #expect(try Setup.loadRuleTests(directory: dir.path, environment: [:]).isEmpty)
        // A test file (its top-level `tests:` would be an unknown section in configuration) changes nothing.
        try FileManager.default.copyItem(
            at: repo.appendingPathComponent("Config/stories_test.yaml"), to: dir.appendingPathComponent("stories_test.yaml"))
        let with = try Setup.loadConfig(directory: dir.path, environment: [:])
        #expect(with.source.contentHash == without.source.contentHash)
        #expect(with.source.files == without.source.files)
        let cases = try Setup.loadRuleTests(directory: dir.path, environment: [:])
        #expect(cases.count >= 6)
        let results = RuleTestRunner(config: with).run(cases)
        let failures = results.flatMap { $0.failures }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func aConfigurationFileMayCarryItsRulesTestsInline() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-inline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
            endpoints:
              a: {ticket_id: $.n}
              b: {ticket_id: $.k}
            rules:
              - {name: relay, from: a, send: [{to: b, type: update, body: {n: {field: $.n}}}]}
            tests:
              - name: relayed
                steps:
                  - {from: a, body: {n: T1}, expect: {rules: [relay], sent: [{to: b, body: {n: T1}}]}}
            """.write(to: dir.appendingPathComponent("all.yaml"), atomically: true, encoding: .utf8)
        let config = try Setup.loadConfig(directory: dir.path, environment: [:])
        #expect(config.rules.map(\.name) == ["relay"])
        let cases = try Setup.loadRuleTests(directory: dir.path, environment: [:])
        #expect(cases.map(\.name) == ["relayed"])
        #expect(RuleTestRunner(config: config).run(cases).flatMap(\.failures) == [])
    }
}
