import Foundation
import JSONPath
import Yams

/// Builds a `SwitchboardConfig` from YAML texts (one per file), collecting every error with its file and
/// line instead of stopping at the first. Reading the files is the caller's job; this does no I/O.
///
/// This file: loading, the order of the sections, and typed access to YAML nodes with errors.
/// ConfigLoader+Sections.swift reads each section (settings, admin, endpoints, translations, rules and
/// their actions); ConfigLoader+Mappings.swift the values a rule maps and the conditions it tests.
package struct ConfigLoader {
    var errors: [ConfigError] = []
    let environment: [String: String]

    package init(environment: [String: String]) {
        self.environment = environment
    }

    /// `files` are (name, YAML text) pairs, e.g. ("Config/rules.yaml", "...").
    package static func load(
        files: [(name: String, text: String)], environment: [String: String]
    ) throws(ConfigErrors) -> SwitchboardConfig {
        var loader = ConfigLoader(environment: environment)
        return try loader.build(files)
    }

    private struct Pending {
        var settings: [(Y, String)] = []
        var endpoints: [(String, Y)] = []
        var translations: [(String, Y)] = []
        var rules: [Y] = []
        var retries: [Y] = []
        var admin: [Y] = []
        var ingress: [Y] = []
    }

    mutating func build(_ files: [(name: String, text: String)]) throws(ConfigErrors) -> SwitchboardConfig {
        var pending = Pending()
        for file in files {
            let root: Node?
            do {
                root = try Yams.compose(yaml: file.text)
            } catch let e as YamlError {
                errors.append(Self.yamlError(e, file: file.name))
                continue
            } catch {
                errors.append(ConfigError(SourceLocation(file: file.name, line: 1), "cannot parse YAML: \(error)"))
                continue
            }
            guard let root else { continue }
            let y = Y(node: root, file: file.name)
            guard let top = mapping(y, "the top level") else { continue }
            for (key, value) in top {
                switch key.string {
                case "settings": pending.settings.append((value, file.name))
                case "endpoints":
                    for (k, v) in mapping(value, "endpoints") ?? [] { pending.endpoints.append((k.string, v)) }
                case "translations":
                    for (k, v) in mapping(value, "translations") ?? [] { pending.translations.append((k.string, v)) }
                case "rules":
                    pending.rules.append(contentsOf: sequence(value, "rules") ?? [])
                case "retries":
                    pending.retries.append(contentsOf: sequence(value, "retries") ?? [])
                case "admin": pending.admin.append(value)
                case "ingress": pending.ingress.append(value)
                case "tests": break  // rule tests written inline: `loadTests` reads them, they configure nothing
                default:
                    error(key, "unknown section '\(key.string)' (expected settings, endpoints, translations, rules, retries, admin, ingress)")
                }
            }
        }

        var settings = Settings()
        for (s, _) in pending.settings { parseSettings(s, into: &settings) }
        if settings.storeMaxRequestBytes > settings.brokerMaxMessageBytes, let (y, _) = pending.settings.first {
            error(y, "settings.store_max_request_bytes (\(settings.storeMaxRequestBytes)) is larger than settings.broker_max_message_bytes "
                + "(\(settings.brokerMaxMessageBytes)): the broker would refuse the largest store requests (raise its max_message_size and both)")
        }
        var admin: AdminSettings?
        for y in pending.admin {
            if admin != nil { error(y, "the admin section is defined twice") }
            admin = parseAdmin(y)
        }
        var ingress: IngressSettings?
        for y in pending.ingress {
            if ingress != nil { error(y, "the ingress section is defined twice") }
            ingress = parseIngress(y)
        }

        var endpoints: [String: EndpointConfig] = [:]
        for (name, y) in pending.endpoints {
            if let existing = endpoints[name] {
                error(y, "endpoint '\(name)' is defined twice (first at \(existing.location))")
                continue
            }
            if name == "switchboard" {
                error(y, "the endpoint name 'switchboard' is reserved (timers come from it)")
            }
            if !Self.isValidName(name) {
                error(y, "endpoint name '\(name)' may only hold letters, digits, '-', '_' and '.'")
            }
            if let e = parseEndpoint(name, y, maxMessageBytes: settings.maxMessageBytes) { endpoints[name] = e }
        }
        // References may only name endpoints that exist.
        for e in endpoints.values {
            for other in e.references.keys where endpoints[other] == nil {
                errors.append(ConfigError(e.location, "endpoint '\(e.name)': references name an unknown endpoint '\(other)'"))
            }
        }

        var translations: [String: TranslationTable] = [:]
        for (name, y) in pending.translations {
            if translations[name] != nil {
                error(y, "translation table '\(name)' is defined twice")
                continue
            }
            if let t = parseTranslation(name, y) { translations[name] = t }
        }

        // Echo conditions may test references: compiled once every endpoint is known.
        for (name, y) in pending.endpoints where endpoints[name] != nil {
            guard case .mapping(let m) = y.node, let echo = m.first(where: { $0.key.string == "echo" })?.value else { continue }
            var context = MappingContext(endpoints: endpoints, translations: translations)
            endpoints[name]?.echo = conditions(Y(node: echo, file: y.file), context: &context)
        }

        var rules: [Rule] = []
        var ruleNames: [String: SourceLocation] = [:]
        for y in pending.rules {
            guard let rule = parseRule(y, endpoints: endpoints, translations: translations) else { continue }
            if let first = ruleNames[rule.name] {
                error(y, "rule '\(rule.name)' is defined twice (first at \(first))")
            }
            ruleNames[rule.name] = rule.location
            rules.append(rule)
        }
        var retries: [RetryPolicy] = []
        for y in pending.retries {
            guard let policy = parseRetry(y, endpoints: endpoints, translations: translations, ruleNames: ruleNames) else { continue }
            if let first = retries.first(where: { $0.name == policy.name }) {
                error(y, "retry policy '\(policy.name)' is defined twice (first at \(first.location))")
            }
            retries.append(policy)
        }
        // Stable: equal priorities keep the order they were written in.
        let ordered = rules.enumerated().sorted { a, b in
            a.element.priority != b.element.priority ? a.element.priority > b.element.priority : a.offset < b.offset
        }.map(\.element)

        if endpoints.isEmpty && errors.isEmpty {
            errors.append(ConfigError(SourceLocation(file: files.first?.name ?? "(config)", line: 1), "no endpoints are configured"))
        }
        // A delayed message or a timer must find its conversation and its stored outbound message when it
        // comes due: neither may be pruned first.
        var waits: [(location: SourceLocation, what: String, ms: Int)] = []
        for rule in ordered {
            waits += rule.sends.compactMap { $0.delayMs.map { (rule.location, "rule '\(rule.name)' has a delay of", $0) } }
            waits += rule.schedules.map { (rule.location, "rule '\(rule.name)' has a timer of", $0.afterMs) }
        }
        for policy in retries {
            if let ms = policy.possibleDelays.max() { waits.append((policy.location, "retry policy '\(policy.name)' may wait", ms)) }
        }
        for wait in waits {
            for (key, days) in [("retention_bodies_days", settings.retention.bodiesDays),
                                ("retention_conversations_days", settings.retention.conversationsDays)]
            where Double(wait.ms) / 1000 >= Double(days) * 86_400 {
                errors.append(ConfigError(
                    wait.location,
                    "\(wait.what) \(wait.ms / 1000) s, not shorter than settings.\(key) (\(days) day(s)): what it waits for would be pruned before it comes due"))
            }
        }
        // A webhook sender retries a delivery for up to days (Jira: with the same identifier): its id must be
        // remembered at least 72 hours to apply it once.
        for e in endpoints.values.sorted(by: { $0.name < $1.name }) {
            guard let w = e.webhook else { continue }
            if w.deliveryIdHeader != nil, settings.retention.dedupeDays < 3 {
                errors.append(ConfigError(w.location, "endpoints.\(e.name).webhook.delivery_id: settings.retention_dedupe_days is \(settings.retention.dedupeDays); a delivery id is remembered for at least 3 days (72 hours)"))
            }
            if ingress == nil {
                errors.append(ConfigError(w.location, "endpoint '\(e.name)' has a webhook but the configuration has no ingress section to serve it"))
            }
        }
        guard errors.isEmpty else {
            throw ConfigErrors(errors: errors.sorted { ($0.location.file, $0.location.line) < ($1.location.file, $1.location.line) })
        }
        var config = SwitchboardConfig(settings: settings, endpoints: endpoints, translations: translations, rules: ordered, admin: admin)
        config.retries = retries
        config.ingress = ingress
        return config
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    // MARK: - Typed access with errors

    mutating func error(_ y: Y, _ message: String) {
        errors.append(ConfigError(y.location, message))
    }

    mutating func unknownKey(_ key: Y, in context: String, allowed: String) {
        error(key, "unknown key '\(key.string)' in \(context) (allowed: \(allowed))")
    }

    mutating func mapping(_ y: Y, _ what: String) -> [(Y, Y)]? {
        guard case .mapping(let m) = y.node else {
            error(y, "\(what) must be a mapping")
            return nil
        }
        return m.map { (Y(node: $0.key, file: y.file), Y(node: $0.value, file: y.file)) }
    }

    mutating func sequence(_ y: Y, _ what: String) -> [Y]? {
        guard case .sequence(let s) = y.node else {
            error(y, "\(what) must be a list")
            return nil
        }
        return s.map { Y(node: $0, file: y.file) }
    }

    mutating func string(_ y: Y) -> String? {
        guard case .scalar = y.node else {
            error(y, "expected a text value")
            return nil
        }
        return substitute(y)
    }

    mutating func stringList(_ y: Y) -> [(node: Y, value: String)] {
        if case .sequence = y.node {
            return (sequence(y, "a list") ?? []).compactMap { item in string(item).map { (item, $0) } }
        }
        return string(y).map { [(y, $0)] } ?? []
    }

    /// `key`: the field's name, for the message ("settings.prefetch: 0 is out of range (1...65535)").
    mutating func int(_ y: Y, key: String? = nil, min: Int = .min, max: Int = .max) -> Int? {
        guard let s = string(y) else { return nil }
        let field = key.map { "\($0): " } ?? ""
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
            error(y, "\(field)expected a whole number, got \(s.debugDescription)")
            return nil
        }
        guard v >= min, v <= max else {
            error(y, "\(field)\(v) is out of range (\(min)...\(max))")
            return nil
        }
        return v
    }

    mutating func double(_ y: Y) -> Double? {
        guard let s = string(y) else { return nil }
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)) else {
            error(y, "expected a number, got \(s.debugDescription)")
            return nil
        }
        return v
    }

    mutating func bool(_ y: Y) -> Bool? {
        guard let s = string(y) else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(y, "expected true or false, got \(s.debugDescription)")
            return nil
        }
    }

    mutating func path(_ y: Y) -> JSONPath? {
        guard let s = string(y) else { return nil }
        do {
            return try JSONPath(s)
        } catch {
            self.error(y, error.description)
            return nil
        }
    }

    /// A YAML value as JSON: plain scalars resolve like YAML (numbers, booleans, null), quoted ones are text.
    mutating func json(_ y: Y) -> JSON? {
        switch y.node {
        case .scalar(let scalar):
            guard let text = substitute(y) else { return nil }
            if scalar.style != .plain { return .string(text) }
            if text == "null" || text == "~" || text.isEmpty { return .null }
            if text == "true" { return .bool(true) }
            if text == "false" { return .bool(false) }
            if let i = Int(text), let n = JSONNumber(text: String(i)) { return .number(n) }
            // As written when it is a JSON number too (`1.50`); YAML's own forms (`.5`, `+1.0`) by value.
            if let d = Double(text), text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
                if case .number(let n)? = try? JSON.parse(text) { return .number(n) }
                return d.isFinite ? .number(JSONNumber(d)) : .string(text)
            }
            return .string(text)
        case .sequence:
            return .array((sequence(y, "a list") ?? []).compactMap { json($0) })
        case .mapping:
            var out: [String: JSON] = [:]
            for (k, v) in mapping(y, "a mapping") ?? [] { out[k.string] = json(v) ?? .null }
            return .object(out)
        case .alias:
            error(y, "YAML aliases are not supported here")
            return nil
        }
    }

    /// `${NAME}` and `${NAME:-default}` with an upper-case NAME are taken from the environment when
    /// the configuration is loaded; every other `${...}` is left for templates.
    mutating func substitute(_ y: Y) -> String? {
        let text = y.string
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                out += rest[start.lowerBound...]
                rest = rest[rest.endIndex...]
                break
            }
            let inner = rest[start.upperBound..<end]
            let name: Substring
            let fallback: Substring?
            if let sep = inner.range(of: ":-") {
                name = inner[..<sep.lowerBound]
                fallback = inner[sep.upperBound...]
            } else {
                name = inner
                fallback = nil
            }
            if Self.isEnvName(name) {
                if let v = environment[String(name)], !(v.isEmpty && fallback != nil) {
                    out += v
                } else if let fallback {
                    out += fallback
                } else {
                    error(y, "environment variable \(name) is not set and has no default (write ${\(name):-default})")
                    return nil
                }
            } else {
                out += rest[start.lowerBound...end]
            }
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    static func isEnvName(_ s: Substring) -> Bool {
        guard let first = s.unicodeScalars.first, ("A"..."Z").contains(first) || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    static func yamlError(_ e: YamlError, file: String) -> ConfigError {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return ConfigError(SourceLocation(file: file, line: mark.line, column: mark.column), "invalid YAML: \(ctx)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                SourceLocation(file: file, line: context.mark.line, column: context.mark.column),
                "duplicate key(s) \(duplicates.joined(separator: ", ")) in one mapping")
        default:
            return ConfigError(SourceLocation(file: file, line: 1), "invalid YAML: \(e)")
        }
    }
}

/// A YAML node with the file it came from.
struct Y {
    let node: Node
    let file: String

    var location: SourceLocation {
        let mark = node.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 0)
    }

    var string: String {
        if case .scalar(let s) = node { return s.string }
        return ""
    }
}
