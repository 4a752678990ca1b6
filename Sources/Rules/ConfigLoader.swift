import Foundation
import JSONPath
import Yams

/// Builds a `SwitchboardConfig` from YAML texts (one per file), collecting every error with its file and
/// line instead of stopping at the first. Reading the files is the caller's job; this does no I/O.
package struct ConfigLoader {
    private var errors: [ConfigError] = []
    private let environment: [String: String]

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
        var admin: [Y] = []
    }

    private mutating func build(_ files: [(name: String, text: String)]) throws(ConfigErrors) -> SwitchboardConfig {
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
                case "admin": pending.admin.append(value)
                default:
                    error(key, "unknown section '\(key.string)' (expected settings, endpoints, translations, rules, admin)")
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
            if let e = parseEndpoint(name, y) { endpoints[name] = e }
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
        // Stable: equal priorities keep the order they were written in.
        let ordered = rules.enumerated().sorted { a, b in
            a.element.priority != b.element.priority ? a.element.priority > b.element.priority : a.offset < b.offset
        }.map(\.element)

        if endpoints.isEmpty && errors.isEmpty {
            errors.append(ConfigError(SourceLocation(file: files.first?.name ?? "(config)", line: 1), "no endpoints are configured"))
        }
        // A delayed message or a timer must find its conversation and its stored outbound message when it
        // comes due: neither may be pruned first.
        for rule in ordered {
            let waits = rule.sends.compactMap { $0.delayMs.map { ("a delay of", $0) } } + rule.schedules.map { ("a timer of", $0.afterMs) }
            for (what, ms) in waits {
                for (key, days) in [("retention_bodies_days", settings.retention.bodiesDays),
                                    ("retention_conversations_days", settings.retention.conversationsDays)]
                where Double(ms) / 1000 >= Double(days) * 86_400 {
                    errors.append(ConfigError(
                        rule.location,
                        "rule '\(rule.name)' has \(what) \(ms / 1000) s, not shorter than settings.\(key) (\(days) day(s)): what it waits for would be pruned before it comes due"))
                }
            }
        }
        guard errors.isEmpty else {
            throw ConfigErrors(errors: errors.sorted { ($0.location.file, $0.location.line) < ($1.location.file, $1.location.line) })
        }
        return SwitchboardConfig(settings: settings, endpoints: endpoints, translations: translations, rules: ordered, admin: admin)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }
    }

    // MARK: - Sections

    private mutating func parseSettings(_ y: Y, into s: inout Settings) {
        for (key, value) in mapping(y, "settings") ?? [] {
            switch key.string {
            case "broker_url": if let v = string(value) { s.brokerURL = v }
            case "tls_ca_file": if let v = string(value) { s.tlsCAFile = v.isEmpty ? nil : v }
            case "data_dir": if let v = string(value) { s.dataDir = v }
            case "max_message_bytes": if let v = int(value, key: "settings.\(key.string)", min: 1) { s.maxMessageBytes = v }
            case "broker_max_message_bytes":
                if let v = int(value, key: "settings.\(key.string)", min: 65_536, max: 512 << 20) { s.brokerMaxMessageBytes = v }
            case "intake_memory_bytes": if let v = int(value, key: "settings.\(key.string)", min: 0, max: 1 << 40) { s.intakeMemoryBytes = v }
            case "max_header_bytes": if let v = int(value, key: "settings.\(key.string)", min: 1024, max: 64 << 10) { s.maxHeaderBytes = v }
            case "partitions": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 1024) { s.partitions = v }
            case "workers": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 64) { s.workers = v }
            case "prefetch": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 65535) { s.prefetch = v }
            case "batch_size": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 10000) { s.batchSize = v }
            case "heartbeat_seconds": if let v = int(value, key: "settings.\(key.string)", min: 0, max: 3600) { s.heartbeatSeconds = v }
            case "store_url":
                if let v = string(value) {
                    if v == "sqlite" || v.hasPrefix("sqlite:") || v.hasPrefix("postgres://") || v.hasPrefix("postgresql://") {
                        s.storeURL = v
                    } else {
                        error(value, "store_url: expected sqlite, sqlite:/path/to/file or postgres://user:password@host:port/database")
                    }
                }
            case "store_timeout_ms": if let v = int(value, key: "settings.\(key.string)", min: 100, max: 600_000) { s.storeTimeoutMs = v }
            case "confirm_timeout_ms": if let v = int(value, key: "settings.\(key.string)", min: 100, max: 3_600_000) { s.confirmTimeoutMs = v }
            case "store_max_request_bytes": if let v = int(value, key: "settings.\(key.string)", min: 65_536, max: 128 << 20) { s.storeMaxRequestBytes = v }
            case "fuse_intake": if let v = bool(value) { s.fuseIntake = v }
            case "timeline_bodies": if let v = bool(value) { s.timelineBodies = v }
            case "metrics_listen":
                if let v = string(value) {
                    if v.isEmpty {
                        s.metricsListen = nil
                    } else if v == "off" || AdminSettings.hostPort(v) != nil {
                        s.metricsListen = v
                    } else {
                        error(value, "metrics_listen '\(v)' is not host:port (e.g. 0.0.0.0:9460) or off")
                    }
                }
            case "log_format":
                if let v = string(value) {
                    if ["text", "json"].contains(v) { s.logFormat = v } else { error(value, "log_format: expected text or json") }
                }
            case "management_url": if let v = string(value) { s.managementURL = v.isEmpty ? nil : v }
            case "queue_type":
                if let v = string(value) {
                    if ["classic", "quorum"].contains(v) { s.queueType = v } else { error(value, "queue_type: expected classic or quorum") }
                }
            case "delivery_limit": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 1_000_000) { s.deliveryLimit = v }
            case "retention_bodies_days": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 36_500) { s.retention.bodiesDays = v }
            case "retention_dedupe_days": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 36_500) { s.retention.dedupeDays = v }
            case "retention_conversations_days": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 36_500) { s.retention.conversationsDays = v }
            case "sqlite_synchronous":
                if let v = string(value) {
                    if ["full", "normal"].contains(v) { s.sqliteSynchronous = v } else { error(value, "sqlite_synchronous: expected full or normal") }
                }
            default: unknownKey(key, in: "settings", allowed: "broker_url, tls_ca_file, data_dir, max_message_bytes, max_header_bytes, broker_max_message_bytes, intake_memory_bytes, partitions, workers, prefetch, batch_size, heartbeat_seconds, store_url, store_timeout_ms, confirm_timeout_ms, store_max_request_bytes, fuse_intake, timeline_bodies, metrics_listen, log_format, management_url, queue_type, delivery_limit, sqlite_synchronous, retention_bodies_days, retention_dedupe_days, retention_conversations_days")
            }
        }
    }

    private mutating func parseAdmin(_ y: Y) -> AdminSettings? {
        guard let m = mapping(y, "admin") else { return nil }
        var a = AdminSettings(location: y.location)
        for (key, value) in m {
            switch key.string {
            case "listen":
                if let v = string(value) {
                    if AdminSettings.hostPort(v) == nil { error(value, "admin.listen '\(v)' is not host:port (e.g. 127.0.0.1:8443)") }
                    a.listen = v
                }
            case "tls_cert_file": if let v = string(value) { a.tlsCertFile = v.isEmpty ? nil : v }
            case "tls_key_file": if let v = string(value) { a.tlsKeyFile = v.isEmpty ? nil : v }
            case "plain_http": if let v = bool(value) { a.plainHTTP = v }
            case "management_url": if let v = string(value) { a.managementURL = v.isEmpty ? nil : v }
            case "session_minutes": if let v = int(value, min: 1, max: 10_080) { a.sessionMinutes = v }
            case "warn_depth": if let v = int(value, min: 1) { a.warnDepth = v }
            case "warn_age_seconds": if let v = int(value, min: 1) { a.warnAgeSeconds = v }
            case "users":
                for item in sequence(value, "admin.users") ?? [] {
                    var user = AdminUser(name: "", role: .viewer, passwordHash: "", location: item.location)
                    for (k, v) in mapping(item, "an admin user") ?? [] {
                        switch k.string {
                        case "name": user.name = string(v) ?? ""
                        case "role": user.role = adminRole(v) ?? .viewer
                        case "password_hash":
                            let hash = string(v) ?? ""
                            if !hash.isEmpty && !(hash.hasPrefix("$2a$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2y$")) {
                                error(v, "admin user: password_hash is not a bcrypt hash (make one with `switchboard admin hash-password`)")
                            }
                            if let cost = AdminSettings.bcryptCost(hash), !AdminSettings.bcryptCosts.contains(cost) {
                                error(v, "admin user: password_hash has bcrypt cost \(cost); the admin accepts \(AdminSettings.bcryptCosts.lowerBound)...\(AdminSettings.bcryptCosts.upperBound)")
                            }
                            user.passwordHash = hash
                        default: unknownKey(k, in: "an admin user", allowed: "name, role, password_hash")
                        }
                    }
                    if user.name.isEmpty { error(item, "admin user without a name") }
                    if user.name.utf8.count > AdminSettings.maxUserNameLength {
                        error(item, "admin user name is \(user.name.utf8.count) bytes long; the limit is \(AdminSettings.maxUserNameLength)")
                    }
                    if a.users.contains(where: { $0.name == user.name }) { error(item, "admin user '\(user.name)' is defined twice") }
                    a.users.append(user)
                }
            case "tokens":
                for item in sequence(value, "admin.tokens") ?? [] {
                    var token = AdminToken(name: "", role: .viewer, sha256: "", location: item.location)
                    for (k, v) in mapping(item, "an API token") ?? [] {
                        switch k.string {
                        case "name": token.name = string(v) ?? ""
                        case "role": token.role = adminRole(v) ?? .viewer
                        case "sha256":
                            let hash = (string(v) ?? "").lowercased()
                            if !hash.isEmpty && (hash.count != 64 || !hash.allSatisfy(\.isHexDigit)) {
                                error(v, "API token: sha256 is not 64 hex digits (make one with `switchboard admin hash-token`)")
                            }
                            token.sha256 = hash
                        default: unknownKey(k, in: "an API token", allowed: "name, role, sha256")
                        }
                    }
                    if token.name.isEmpty { error(item, "API token without a name") }
                    a.tokens.append(token)
                }
            case "trusted_proxies":
                // A list, or one text of addresses separated by commas (what an environment variable holds).
                for (node, text) in stringList(value) {
                    for address in text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) {
                        if AdminSettings.isIPAddress(address) { a.trustedProxies.insert(address) } else { error(node, "admin.trusted_proxies: '\(address)' is not an IP address") }
                    }
                }
            case "client_address_header":
                if let v = string(value) {
                    if v.isEmpty || !v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
                        error(value, "admin.client_address_header: '\(v)' is not a header name")
                    } else {
                        a.clientAddressHeader = v
                    }
                }
            default:
                unknownKey(key, in: "admin", allowed: "listen, tls_cert_file, tls_key_file, plain_http, management_url, session_minutes, warn_depth, warn_age_seconds, users, tokens, trusted_proxies, client_address_header")
            }
        }
        if let (host, _) = AdminSettings.hostPort(a.listen) {
            if a.plainHTTP && !AdminSettings.isLoopback(host) {
                error(y, "admin: plain_http is allowed only on a loopback address (listen is \(a.listen)); give tls_cert_file and tls_key_file")
            }
            if !a.plainHTTP && (a.tlsCertFile == nil || a.tlsKeyFile == nil) {
                error(y, "admin: HTTPS needs tls_cert_file and tls_key_file (or plain_http: true on a loopback address)")
            }
        }
        return a
    }

    private mutating func adminRole(_ y: Y) -> AdminRole? {
        guard let s = string(y) else { return nil }
        guard let role = AdminRole(rawValue: s) else {
            error(y, "unknown role '\(s)' (known: viewer, operator)")
            return nil
        }
        return role
    }

    private mutating func parseEndpoint(_ name: String, _ y: Y) -> EndpointConfig? {
        guard let m = mapping(y, "endpoint '\(name)'") else { return nil }
        var ticketId: JSONPath?
        var e = EndpointConfig(name: name, ticketId: Self.placeholderPath, location: y.location)
        for (key, value) in m {
            switch key.string {
            case "description": e.description = string(value)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            case "format":
                if let f = string(value) {
                    if f != "json" { error(value, "endpoint '\(name)': format '\(f)' is not supported (supported: json)") }
                    e.format = f
                }
            case "ticket_id": ticketId = path(value)
            case "who": e.who = path(value)
            case "type_field": e.typeField = path(value)
            case "ack_key": e.ackKey = path(value)
            case "users": e.users = Set(stringList(value).map(\.value))
            case "backlog_threshold": if let v = int(value, min: 1) { e.backlogThreshold = v }
            case "references":
                for (k, v) in mapping(value, "references of '\(name)'") ?? [] {
                    if let p = path(v) { e.references[k.string] = p }
                }
            default:
                unknownKey(key, in: "endpoint '\(name)'", allowed: "description, format, ticket_id, who, type_field, ack_key, users, backlog_threshold, references")
            }
        }
        guard let ticketId else {
            error(y, "endpoint '\(name)' needs 'ticket_id': the JSONPath of its ticket id, e.g. $.number")
            return nil
        }
        e.ticketId = ticketId
        return e
    }

    private static let placeholderPath = try! JSONPath("$")

    private mutating func parseTranslation(_ name: String, _ y: Y) -> TranslationTable? {
        guard let m = mapping(y, "translation table '\(name)'") else { return nil }
        var t = TranslationTable(name: name, values: [:], defaultValue: nil, ignoreCase: false, location: y.location)
        var sawValues = false
        for (key, value) in m {
            switch key.string {
            case "values":
                sawValues = true
                for (k, v) in mapping(value, "values of '\(name)'") ?? [] {
                    if let j = json(v) { t.values[k.string] = j }
                }
            case "default": t.defaultValue = json(value)
            case "ignore_case": if let b = bool(value) { t.ignoreCase = b }
            default: unknownKey(key, in: "translation table '\(name)'", allowed: "values, default, ignore_case")
            }
        }
        if !sawValues { error(y, "translation table '\(name)' needs 'values'") }
        t.lowercased = Dictionary(t.values.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        return t
    }

    private mutating func parseRule(
        _ y: Y, endpoints: [String: EndpointConfig], translations: [String: TranslationTable]
    ) -> Rule? {
        guard let m = mapping(y, "a rule") else { return nil }
        var rule = Rule(
            name: "", priority: 0, from: [], types: [], conditions: [], drop: false, stop: false, sends: [],
            location: y.location)
        var context = MappingContext(endpoints: endpoints, translations: translations)
        for (key, value) in m {
            switch key.string {
            case "name": rule.name = string(value) ?? ""
            case "description": rule.description = string(value)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            case "priority": rule.priority = int(value) ?? 0
            case "from":
                for v in stringList(value) {
                    if endpoints[v.value] == nil {
                        error(v.node, "unknown endpoint '\(v.value)' in 'from' (known: \(endpoints.keys.sorted().joined(separator: ", ")))")
                    }
                    rule.from.insert(v.value)
                }
            case "type": rule.types = Set(stringList(value).map(\.value))
            case "timer": rule.timer = string(value)
            case "when": rule.conditions = conditions(value, context: &context)
            case "set":
                for w in sequence(value, "set") ?? [] {
                    if let write = parseAttributeWrite(w, context: &context) { rule.sets.append(write) }
                }
            case "counters":
                for c in sequence(value, "counters") ?? [] {
                    if let op = parseCounterOp(c) { rule.counters.append(op) }
                }
            case "schedule":
                for t in sequence(value, "schedule") ?? [] {
                    if let timer = parseSchedule(t) { rule.schedules.append(timer) }
                }
            case "drop": rule.drop = bool(value) ?? false
            case "stop": rule.stop = bool(value) ?? false
            case "send":
                for s in sequence(value, "send") ?? [] {
                    if let send = parseSend(s, context: &context) { rule.sends.append(send) }
                }
            default:
                unknownKey(key, in: "rule", allowed: "name, description, priority, from, type, timer, when, drop, stop, set, counters, schedule, send")
            }
        }
        if rule.name.isEmpty { error(y, "a rule needs a 'name'") }
        if rule.drop && !rule.sends.isEmpty { error(y, "rule '\(rule.name)' both drops and sends; choose one") }
        if !rule.drop && rule.sends.isEmpty && rule.sets.isEmpty && rule.counters.isEmpty && rule.schedules.isEmpty {
            error(y, "rule '\(rule.name)' does nothing: give it send, set, counters, schedule or drop")
        }
        if rule.timer != nil && !rule.from.isEmpty {
            error(y, "rule '\(rule.name)' has both 'timer' and 'from'; a timer rule matches its timer only")
        }
        return rule
    }

    private struct MappingContext {
        var endpoints: [String: EndpointConfig]
        var translations: [String: TranslationTable]
    }

    private mutating func parseSend(_ y: Y, context: inout MappingContext) -> Send? {
        guard let m = mapping(y, "a send") else { return nil }
        var to: String?
        var type = "update"
        var body: Mapping = .object([])
        var delay: Int?
        for (key, value) in m {
            switch key.string {
            case "to":
                if let t = string(value) {
                    if context.endpoints[t] == nil {
                        error(value, "unknown endpoint '\(t)' in 'to' (known: \(context.endpoints.keys.sorted().joined(separator: ", ")))")
                    }
                    to = t
                }
            case "type": type = string(value) ?? type
            case "body": body = mappingValue(value, context: &context)
            case "delay": delay = duration(value)
            default: unknownKey(key, in: "send", allowed: "to, type, body, delay")
            }
        }
        guard let to else {
            error(y, "a send needs 'to': the target endpoint")
            return nil
        }
        return Send(to: to, type: type, body: body, delayMs: delay, location: y.location)
    }

    private mutating func parseAttributeWrite(_ y: Y, context: inout MappingContext) -> AttributeWrite? {
        guard let m = mapping(y, "a set") else { return nil }
        var name: String?
        var value: Mapping?
        var when: [Condition] = []
        for (k, v) in m {
            switch k.string {
            case "attribute": name = string(v)
            case "value": value = mappingValue(v, context: &context)
            case "when": when = conditions(v, context: &context)
            default: unknownKey(k, in: "set", allowed: "attribute, value, when")
            }
        }
        guard let name, !name.isEmpty else {
            error(y, "a set needs 'attribute': the attribute's name")
            return nil
        }
        guard let value else {
            error(y, "set of '\(name)' needs 'value' (a mapping: a constant, {field: ...}, a template, {attribute: ...}; null removes it)")
            return nil
        }
        return AttributeWrite(name: name, value: value, conditions: when)
    }

    private mutating func parseCounterOp(_ y: Y) -> CounterOp? {
        guard let m = mapping(y, "a counter change") else { return nil }
        var name: String?
        var change: CounterOp.Change?
        for (k, v) in m {
            switch k.string {
            case "counter": name = string(v)
            case "increment": change = int(v).map { .increment($0) }
            case "reset": if bool(v) == true { change = .set(0) }
            case "set": change = int(v).map { .set($0) }
            default: unknownKey(k, in: "counters", allowed: "counter, increment, reset, set")
            }
        }
        guard let name, !name.isEmpty else {
            error(y, "a counter change needs 'counter': the counter's name")
            return nil
        }
        guard let change else {
            error(y, "counter '\(name)' needs one of increment: N, reset: true, set: N")
            return nil
        }
        return CounterOp(name: name, change: change)
    }

    private mutating func parseSchedule(_ y: Y) -> TimerSchedule? {
        guard let m = mapping(y, "a schedule") else { return nil }
        var name: String?
        var after: Int?
        for (k, v) in m {
            switch k.string {
            case "timer": name = string(v)
            case "after": after = duration(v)
            default: unknownKey(k, in: "schedule", allowed: "timer, after")
            }
        }
        guard let name, !name.isEmpty, let after else {
            error(y, "a schedule needs 'timer' (a name) and 'after' (a duration such as 60s)")
            return nil
        }
        return TimerSchedule(name: name, afterMs: after)
    }

    /// `250ms`, `1.5s`, `2m`, `1h`; a bare number is seconds. At least 1 ms, at most 24 days (the
    /// largest per-message TTL RabbitMQ takes is 2^32-1 ms).
    private mutating func duration(_ y: Y) -> Int? {
        guard let text = string(y)?.trimmingCharacters(in: .whitespaces).lowercased() else { return nil }
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var ms: Double?
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)) { ms = n * factor }
            break
        }
        if ms == nil, let n = Double(text) { ms = n * 1000 }
        guard let ms, ms >= 1, ms <= 2_073_600_000 else {
            error(y, "expected a duration between 1ms and 24 days such as 500ms, 60s, 5m or 1h; got \(text.debugDescription)")
            return nil
        }
        return Int(ms.rounded())
    }

    // MARK: - Mappings

    private static let mappingKeys: Set<String> = ["field", "value", "template", "reference", "attribute", "counter", "translate", "default"]

    private mutating func mappingValue(_ y: Y, context: inout MappingContext) -> Mapping {
        switch y.node {
        case .scalar:
            // Environment references are resolved first; what still holds `${` is a template.
            guard let text = substitute(y) else { return .constant(.null) }
            if text.contains("${") {
                if let t = template(y) { return .template(t, Transform()) }
                return .constant(.null)
            }
            return .constant(json(y) ?? .null)
        case .sequence:
            return .array((sequence(y, "a list") ?? []).map { mappingValue($0, context: &context) })
        case .mapping:
            let m = mapping(y, "a mapping") ?? []
            let keys = Set(m.map(\.0.string))
            let sources = keys.intersection(["field", "value", "template", "reference", "attribute", "counter"])
            if !keys.isEmpty, keys.isSubset(of: Self.mappingKeys), !sources.isEmpty {
                return specialMapping(y, m, sources: sources, context: &context)
            }
            return .object(m.map { ($0.0.string, mappingValue($0.1, context: &context)) })
        case .alias:
            error(y, "YAML aliases are not supported here")
            return .constant(.null)
        }
    }

    private mutating func specialMapping(
        _ y: Y, _ m: [(Y, Y)], sources: Set<String>, context: inout MappingContext
    ) -> Mapping {
        if sources.count > 1 {
            error(y, "a value takes one of field, value, template, reference, attribute, counter; this one has \(sources.sorted().joined(separator: " and "))")
        }
        var transform = Transform()
        for (k, v) in m {
            if k.string == "translate", let name = string(v) {
                if context.translations[name] == nil {
                    error(v, "unknown translation table '\(name)' (known: \(context.translations.keys.sorted().joined(separator: ", ")))")
                }
                transform.translate = name
            }
            if k.string == "default" { transform.defaultValue = json(v) }
        }
        for (k, v) in m {
            switch k.string {
            case "field": if let p = path(v) { return .field(p, transform) }
            case "value": return .constant(json(v) ?? .null)
            case "template": if let t = template(v) { return .template(t, transform) }
            case "reference":
                if let e = string(v) {
                    if context.endpoints[e] == nil { error(v, "unknown endpoint '\(e)' in 'reference'") }
                    return .reference(e, transform)
                }
            case "attribute": if let a = string(v) { return .attribute(a, transform) }
            case "counter": if let c = string(v) { return .counter(c) }
            default: continue
            }
        }
        return .constant(.null)
    }

    /// Parses `${...}` placeholders: a JSONPath (`${$.a.b}`), a dotted field name (`${a.b}`),
    /// `${ref:endpoint}` or `${meta:name}`. `$${` is a literal `${`.
    private mutating func template(_ y: Y) -> Template? {
        guard let text = string(y) else { return nil }
        var parts: [Template.Part] = []
        var literal = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "$" {
                literal += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            literal += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                error(y, "template \(text.debugDescription): '${' without a closing '}'")
                return nil
            }
            let inner = String(rest[start.upperBound..<end]).trimmingCharacters(in: .whitespaces)
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal = ""
            }
            if inner.hasPrefix("ref:") {
                parts.append(.reference(String(inner.dropFirst(4))))
            } else if inner.hasPrefix("attr:") {
                parts.append(.attribute(String(inner.dropFirst(5))))
            } else if inner.hasPrefix("counter:") {
                parts.append(.counter(String(inner.dropFirst(8))))
            } else if inner.hasPrefix("meta:") {
                let key = String(inner.dropFirst(5))
                guard Self.metaKeys.contains(key) else {
                    error(y, "template \(text.debugDescription): unknown '${meta:\(key)}' (known: \(Self.metaKeys.sorted().joined(separator: ", ")))")
                    return nil
                }
                parts.append(.meta(key))
            } else {
                let source = inner.hasPrefix("$") ? inner : "$." + inner
                do {
                    parts.append(.field(try JSONPath(source)))
                } catch {
                    self.error(y, "template \(text.debugDescription): \(error.message) in '${\(inner)}'")
                    return nil
                }
            }
            rest = rest[rest.index(after: end)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return Template(parts: parts, source: text)
    }

    static let metaKeys: Set<String> = [
        "endpoint", "message_id", "type", "who", "ticket_id", "conversation", "timer",
        "acked_type", "acked_rule", "acked_target", "acked_message_id",
    ]

    // MARK: - Conditions

    private mutating func conditions(_ y: Y, context: inout MappingContext) -> [Condition] {
        switch y.node {
        case .sequence: return (sequence(y, "when") ?? []).compactMap { condition($0, context: &context) }
        default: return condition(y, context: &context).map { [$0] } ?? []
        }
    }

    private static let operatorKeys = ["equals", "in", "regex", "exists", "lt", "lte", "gt", "gte"]

    private mutating func condition(_ y: Y, context: inout MappingContext) -> Condition? {
        guard let m = mapping(y, "a condition") else { return nil }
        let keys = m.map(\.0.string)
        if keys == ["all"] { return .all(conditions(m[0].1, context: &context)) }
        if keys == ["any"] { return .any(conditions(m[0].1, context: &context)) }
        if keys == ["not"] {
            return condition(m[0].1, context: &context).map { .not($0) }
        }
        var subject: Subject?
        var op: Operator?
        var ignoreCase = false
        var negate = false
        var opNode: (Y, Y)?
        for (k, v) in m where k.string == "ignore_case" { ignoreCase = bool(v) ?? false }
        for (k, v) in m {
            switch k.string {
            case "field": subject = path(v).map { .field($0) }
            case "reference":
                if let e = string(v) {
                    if context.endpoints[e] == nil { error(v, "unknown endpoint '\(e)' in condition 'reference'") }
                    subject = .reference(e)
                }
            case "attribute": subject = string(v).map { .attribute($0) }
            case "counter": subject = string(v).map { .counter($0) }
            case "meta":
                if let key = string(v) {
                    if !Self.metaKeys.contains(key) { error(v, "unknown meta '\(key)' (known: \(Self.metaKeys.sorted().joined(separator: ", ")))") }
                    subject = .meta(key)
                }
            case "ignore_case": continue
            case "negate": negate = bool(v) ?? false
            case let key where Self.operatorKeys.contains(key):
                if let (previous, _) = opNode {
                    error(k, "a condition takes one operator; it has '\(previous.string)' and '\(key)'")
                }
                opNode = (k, v)
            default:
                unknownKey(k, in: "condition", allowed: "field, reference, attribute, counter, meta, equals, in, regex, exists, lt, lte, gt, gte, ignore_case, negate; or all, any, not")
            }
        }
        if let (k, v) = opNode {
            switch k.string {
            case "equals": op = json(v).map { .equals($0, ignoreCase: ignoreCase) }
            case "in":
                let items = (sequence(v, "'in'") ?? []).compactMap { json($0) }
                op = .oneOf(items, ignoreCase: ignoreCase)
            case "regex":
                if let pattern = string(v) {
                    do {
                        let regex = try NSRegularExpression(pattern: pattern, options: ignoreCase ? [.caseInsensitive] : [])
                        op = .regex(NSRegularExpressionBox(regex: regex, pattern: pattern))
                    } catch {
                        self.error(v, "invalid regex \(pattern.debugDescription): \(error.localizedDescription)")
                    }
                }
            case "exists": op = bool(v).map { .exists($0) }
            default:
                if let n = double(v), let c = NumericComparison(rawValue: k.string) { op = .compare(c, n) }
            }
        } else {
            error(y, "a condition needs an operator: one of \(Self.operatorKeys.joined(separator: ", "))")
        }
        if subject == nil && !m.contains(where: { ["field", "reference", "attribute", "counter", "meta"].contains($0.0.string) }) {
            error(y, "a condition needs a subject: field (a JSONPath), reference (an endpoint), attribute, counter or meta")
        }
        guard let subject, let op else { return nil }
        return negate ? .not(.test(subject, op)) : .test(subject, op)
    }

    // MARK: - Typed access with errors

    private mutating func error(_ y: Y, _ message: String) {
        errors.append(ConfigError(y.location, message))
    }

    private mutating func unknownKey(_ key: Y, in context: String, allowed: String) {
        error(key, "unknown key '\(key.string)' in \(context) (allowed: \(allowed))")
    }

    private mutating func mapping(_ y: Y, _ what: String) -> [(Y, Y)]? {
        guard case .mapping(let m) = y.node else {
            error(y, "\(what) must be a mapping")
            return nil
        }
        return m.map { (Y(node: $0.key, file: y.file), Y(node: $0.value, file: y.file)) }
    }

    private mutating func sequence(_ y: Y, _ what: String) -> [Y]? {
        guard case .sequence(let s) = y.node else {
            error(y, "\(what) must be a list")
            return nil
        }
        return s.map { Y(node: $0, file: y.file) }
    }

    private mutating func string(_ y: Y) -> String? {
        guard case .scalar = y.node else {
            error(y, "expected a text value")
            return nil
        }
        return substitute(y)
    }

    private mutating func stringList(_ y: Y) -> [(node: Y, value: String)] {
        if case .sequence = y.node {
            return (sequence(y, "a list") ?? []).compactMap { item in string(item).map { (item, $0) } }
        }
        return string(y).map { [(y, $0)] } ?? []
    }

    /// `key`: the field's name, for the message ("settings.prefetch: 0 is out of range (1...65535)").
    private mutating func int(_ y: Y, key: String? = nil, min: Int = .min, max: Int = .max) -> Int? {
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

    private mutating func double(_ y: Y) -> Double? {
        guard let s = string(y) else { return nil }
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)) else {
            error(y, "expected a number, got \(s.debugDescription)")
            return nil
        }
        return v
    }

    private mutating func bool(_ y: Y) -> Bool? {
        guard let s = string(y) else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(y, "expected true or false, got \(s.debugDescription)")
            return nil
        }
    }

    private mutating func path(_ y: Y) -> JSONPath? {
        guard let s = string(y) else { return nil }
        do {
            return try JSONPath(s)
        } catch {
            self.error(y, error.description)
            return nil
        }
    }

    /// A YAML value as JSON: plain scalars resolve like YAML (numbers, booleans, null), quoted ones are text.
    private mutating func json(_ y: Y) -> JSON? {
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
    private mutating func substitute(_ y: Y) -> String? {
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

    private static func isEnvName(_ s: Substring) -> Bool {
        guard let first = s.unicodeScalars.first, ("A"..."Z").contains(first) || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    private static func yamlError(_ e: YamlError, file: String) -> ConfigError {
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
private struct Y {
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
