import Foundation
import JSONPath
import Yams

/// Reading rule tests (`tests:` in `*_test.yaml` files, see `RuleTestCase`), with the configuration's
/// typed access: every error with its file and line, all of them at once.
extension ConfigLoader {
    /// `files` are (name, YAML text) pairs; `read` reads a `body_file` (a path relative to the test file's
    /// folder, resolved by the caller), so that this stays free of I/O. `inline` names configuration files:
    /// only their `tests:` section is read here (the rest is configuration).
    package static func loadTests(
        files: [(name: String, text: String)], environment: [String: String], inline: Set<String> = [],
        read: (_ testFile: String, _ path: String) throws -> String = { _, path in throw ConfigError(SourceLocation(file: path, line: 0), "no files here") }
    ) throws(ConfigErrors) -> [RuleTestCase] {
        var loader = ConfigLoader(environment: environment)
        var cases: [RuleTestCase] = []
        for file in files {
            let root: Node?
            do {
                root = try Yams.compose(yaml: file.text)
            } catch let e as YamlError {
                loader.errors.append(Self.yamlError(e, file: file.name))
                continue
            } catch {
                loader.errors.append(ConfigError(SourceLocation(file: file.name, line: 1), "cannot parse YAML: \(error)"))
                continue
            }
            guard let root else { continue }
            let y = Y(node: root, file: file.name)
            for (key, value) in loader.mapping(y, "a test file's top level") ?? [] {
                guard key.string == "tests" else {
                    if !inline.contains(file.name) { loader.error(key, "unknown section '\(key.string)' in a test file (expected tests)") }
                    continue
                }
                for item in loader.sequence(value, "tests") ?? [] {
                    if let c = loader.parseTest(item, read: { try read(file.name, $0) }) { cases.append(c) }
                }
            }
        }
        var seen: [String: SourceLocation] = [:]
        for c in cases {
            if let first = seen[c.name] {
                loader.errors.append(ConfigError(c.location, "a second test named '\(c.name)' (the first is at \(first))"))
            }
            seen[c.name] = c.location
        }
        if !loader.errors.isEmpty { throw ConfigErrors(errors: loader.errors) }
        return cases
    }

    mutating func parseTest(_ y: Y, read: (String) throws -> String) -> RuleTestCase? {
        guard let fields = mapping(y, "a test") else { return nil }
        var name: String?
        var start = ConversationSnapshot(id: "test-conversation")
        var pendingTimers: [(name: String, afterMs: Int)] = []
        var answers: [String: [JSON]] = [:]
        var steps: [RuleTestStep] = []
        for (key, value) in fields {
            switch key.string {
            case "name": name = string(value)
            case "state":
                for (k, v) in mapping(value, "state") ?? [] {
                    switch k.string {
                    case "references":
                        for (endpoint, ticket) in mapping(v, "state.references") ?? [] { start.references[endpoint.string] = string(ticket) }
                    case "attributes":
                        for (attribute, json) in mapping(v, "state.attributes") ?? [] { start.attributes[attribute.string] = self.json(json) }
                    case "counters":
                        for (counter, n) in mapping(v, "state.counters") ?? [] { start.counters[counter.string] = int(n, key: counter.string) }
                    case "timers":
                        for (timer, after) in mapping(v, "state.timers (timer name: due after)") ?? [] {
                            if let ms = duration(after) { pendingTimers.append((timer.string, ms)) }
                        }
                    default: unknownKey(k, in: "state", allowed: "references, attributes, counters, timers")
                    }
                }
            case "answers":
                for (endpoint, list) in mapping(value, "answers") ?? [] {
                    answers[endpoint.string] = (sequence(list, "answers.\(endpoint.string) (the ack bodies, in order)") ?? []).compactMap { json($0) }
                }
            case "steps":
                for step in sequence(value, "steps") ?? [] {
                    if let s = parseStep(step, read: read) { steps.append(s) }
                }
            default: unknownKey(key, in: "a test", allowed: "name, state, answers, steps")
            }
        }
        guard let name, !name.isEmpty else {
            error(y, "a test needs a name")
            return nil
        }
        if steps.isEmpty { error(y, "test '\(name)' has no steps") }
        if !start.references.isEmpty || !start.attributes.isEmpty || !start.counters.isEmpty || !pendingTimers.isEmpty { start.version = 1 }
        return RuleTestCase(name: name, location: y.location, start: start, pendingTimers: pendingTimers, answers: answers, steps: steps)
    }

    mutating func parseStep(_ y: Y, read: (String) throws -> String) -> RuleTestStep? {
        guard let fields = mapping(y, "a step") else { return nil }
        var from: String?, ack: String?, advance: Int?, type: String?, answering: String?, body: JSON?, nth: Int?
        var expect = RuleTestExpectation()
        for (key, value) in fields {
            switch key.string {
            case "from": from = string(value)
            case "ack": ack = string(value)
            case "advance": advance = duration(value)
            case "type": type = string(value)
            case "answering": answering = string(value)
            case "nth": nth = int(value, key: "nth", min: 1)
            case "body": body = json(value)
            case "body_file":
                guard let path = string(value) else { continue }
                do {
                    body = try JSON.parse(Data(try read(path).utf8))
                } catch {
                    self.error(value, "body_file \(path): \(error)")
                }
            case "expect": expect = parseExpectation(value)
            default: unknownKey(key, in: "a step", allowed: "from, ack, advance, type, answering, nth, body, body_file, expect")
            }
        }
        let action: RuleTestStep.Action
        switch (from, ack, advance) {
        case (let endpoint?, nil, nil):
            guard let body else {
                error(y, "a message step needs a body (or body_file)")
                return nil
            }
            action = .message(endpoint: endpoint, type: type, body: body)
        case (nil, let endpoint?, nil):
            action = .ack(endpoint: endpoint, answering: answering, body: body ?? ["status": .string("ok")], nth: nth)
        case (nil, nil, let ms?):
            action = .advance(ms: ms)
        default:
            error(y, "a step is one of: from (a message), ack (an answer), advance (time passing)")
            return nil
        }
        return RuleTestStep(action: action, location: y.location, expect: expect)
    }

    mutating func parseExpectation(_ y: Y) -> RuleTestExpectation {
        var e = RuleTestExpectation()
        for (key, value) in mapping(y, "expect") ?? [] {
            switch key.string {
            case "rules": e.rules = stringList(value).map(\.value)
            case "timers": e.timers = stringList(value).map(\.value)
            case "sent":
                if case .sequence = value.node {
                    e.sent = (sequence(value, "expect.sent") ?? []).compactMap { parseSend($0) }
                } else {
                    error(value, "expect.sent is a list of the messages sent (write [] for none)")
                }
            case "attributes":
                for (name, v) in mapping(value, "expect.attributes") ?? [] { e.attributes[name.string] = json(v) ?? .null }
            case "counters":
                for (name, v) in mapping(value, "expect.counters") ?? [] { e.counters[name.string] = int(v, key: name.string) }
            case "dropped": e.dropped = bool(value)
            case "no_rule": e.noRule = bool(value)
            case "parked":
                if let s = string(value) { e.parked = ["true", "yes"].contains(s.lowercased()) ? "" : s }
            default:
                unknownKey(key, in: "expect", allowed: "rules, sent, timers, attributes, counters, dropped, no_rule, parked")
            }
        }
        return e
    }

    mutating func parseSend(_ y: Y) -> ExpectedSend? {
        var to: String?
        var send = ExpectedSend(location: y.location, to: "")
        for (key, value) in mapping(y, "a sent message") ?? [] {
            switch key.string {
            case "to": to = string(value)
            case "type": send.type = string(value)
            case "body": send.body = json(value)
            case "contains": send.contains = json(value)
            case "paths":
                for (p, v) in mapping(value, "paths") ?? [] {
                    if let path = self.path(p) { send.paths.append((p.string, path, json(v) ?? .null)) }
                }
            case "delay": send.delayMs = duration(value)
            default: unknownKey(key, in: "a sent message", allowed: "to, type, body, contains, paths, delay")
            }
        }
        guard let to else {
            error(y, "a sent message names its target endpoint (to)")
            return nil
        }
        send.to = to
        return send
    }
}
