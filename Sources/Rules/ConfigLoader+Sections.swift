import Foundation
import JSONPath
import Yams

// The configuration's sections, each read into its model with errors named by file and line.
extension ConfigLoader {
    // MARK: - Sections

    mutating func parseSettings(_ y: Y, into s: inout Settings) {
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
            case "loop_breaker":
                if value.string == "off" {
                    s.loopBreaker = nil
                } else if let m = mapping(value, "settings.loop_breaker") {
                    var loop = LoopBreaker()
                    for (k, v) in m {
                        switch k.string {
                        case "messages": if let n = int(v, key: "settings.loop_breaker.messages", min: 2, max: 1_000_000) { loop.messages = n }
                        case "within": if let ms = duration(v) { loop.withinSeconds = max(1, ms / 1000) }
                        default: unknownKey(k, in: "settings.loop_breaker", allowed: "messages, within")
                        }
                    }
                    s.loopBreaker = loop
                }
            case "retention_conversations_days": if let v = int(value, key: "settings.\(key.string)", min: 1, max: 36_500) { s.retention.conversationsDays = v }
            case "sqlite_synchronous":
                if let v = string(value) {
                    if ["full", "normal"].contains(v) { s.sqliteSynchronous = v } else { error(value, "sqlite_synchronous: expected full or normal") }
                }
            default: unknownKey(key, in: "settings", allowed: "broker_url, tls_ca_file, data_dir, max_message_bytes, max_header_bytes, broker_max_message_bytes, intake_memory_bytes, partitions, workers, prefetch, batch_size, heartbeat_seconds, store_url, store_timeout_ms, confirm_timeout_ms, store_max_request_bytes, fuse_intake, timeline_bodies, metrics_listen, log_format, management_url, queue_type, delivery_limit, sqlite_synchronous, retention_bodies_days, retention_dedupe_days, retention_conversations_days, loop_breaker")
            }
        }
    }

    mutating func parseAdmin(_ y: Y) -> AdminSettings? {
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
            case "chart_interval":
                if let ms = duration(value) {
                    if ms < 1_000 || ms > 600_000 { error(value, "admin.chart_interval: between 1s and 10m") } else { a.chartIntervalMs = ms }
                }
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
                unknownKey(key, in: "admin", allowed: "listen, tls_cert_file, tls_key_file, plain_http, management_url, session_minutes, warn_depth, warn_age_seconds, chart_interval, users, tokens, trusted_proxies, client_address_header")
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

    mutating func adminRole(_ y: Y) -> AdminRole? {
        guard let s = string(y) else { return nil }
        guard let role = AdminRole(rawValue: s) else {
            error(y, "unknown role '\(s)' (known: viewer, operator)")
            return nil
        }
        return role
    }

    mutating func parseEndpoint(_ name: String, _ y: Y, maxMessageBytes: Int) -> EndpointConfig? {
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
            case "personal": e.personal = stringList(value).compactMap { path($0.node) }
            case "webhook": e.webhook = parseWebhook(name, value, maxMessageBytes: maxMessageBytes)
            case "rest": e.rest = parseRest(name, value)
            case "echo": break  // compiled once every endpoint is known (`ConfigLoader.load`)
            case "references":
                for (k, v) in mapping(value, "references of '\(name)'") ?? [] {
                    if let p = path(v) { e.references[k.string] = p }
                }
            default:
                unknownKey(key, in: "endpoint '\(name)'", allowed: "description, format, ticket_id, who, type_field, ack_key, users, backlog_threshold, personal, references, webhook, rest, echo")
            }
        }
        guard let ticketId else {
            error(y, "endpoint '\(name)' needs 'ticket_id': the JSONPath of its ticket id, e.g. $.number")
            return nil
        }
        e.ticketId = ticketId
        // A REST endpoint's acks are Switchboard's own (`{"status", "code", "key", ...}`): a create's key is at $.key.
        if e.rest != nil, e.ackKey == nil { e.ackKey = try? JSONPath("$.key") }
        return e
    }

    static let placeholderPath = try! JSONPath("$")

    mutating func parseTranslation(_ name: String, _ y: Y) -> TranslationTable? {
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

    mutating func parseRule(
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
            case "timer":
                rule.timer = string(value)
                if rule.timer?.hasPrefix(RetryPolicy.timerPrefix) == true {
                    error(value, "timer names starting with '\(RetryPolicy.timerPrefix)' are retry policies' own")
                }
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

    struct MappingContext {
        var endpoints: [String: EndpointConfig]
        var translations: [String: TranslationTable]
    }

    mutating func parseSend(_ y: Y, context: inout MappingContext) -> Send? {
        guard let m = mapping(y, "a send") else { return nil }
        var to: String?
        var type = "update"
        var body: Mapping = .object([])
        var delay: Int?
        var when: [Condition] = []
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
            case "when": when = conditions(value, context: &context)
            default: unknownKey(key, in: "send", allowed: "to, type, body, delay, when")
            }
        }
        guard let to else {
            error(y, "a send needs 'to': the target endpoint")
            return nil
        }
        return Send(to: to, type: type, body: body, delayMs: delay, location: y.location, conditions: when)
    }

    mutating func parseAttributeWrite(_ y: Y, context: inout MappingContext) -> AttributeWrite? {
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
        if Reserved.isReserved(name) {
            error(y, "attribute '\(name)': names starting with '\(Reserved.prefix)' are Switchboard's own; choose another name")
            return nil
        }
        guard let value else {
            error(y, "set of '\(name)' needs 'value' (a mapping: a constant, {field: ...}, a template, {attribute: ...}; null removes it)")
            return nil
        }
        return AttributeWrite(name: name, value: value, conditions: when)
    }

    mutating func parseCounterOp(_ y: Y) -> CounterOp? {
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
        if Reserved.isReserved(name) {
            error(y, "counter '\(name)': names starting with '\(Reserved.prefix)' are Switchboard's own; choose another name")
            return nil
        }
        guard let change else {
            error(y, "counter '\(name)' needs one of increment: N, reset: true, set: N")
            return nil
        }
        return CounterOp(name: name, change: change)
    }

    mutating func parseSchedule(_ y: Y) -> TimerSchedule? {
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
        if name.hasPrefix(RetryPolicy.timerPrefix) { error(y, "timer names starting with '\(RetryPolicy.timerPrefix)' are retry policies' own") }
        return TimerSchedule(name: name, afterMs: after)
    }

    /// `250ms`, `1.5s`, `2m`, `1h`; a bare number is seconds. At least 1 ms, at most 24 days (the
    /// largest per-message TTL RabbitMQ takes is 2^32-1 ms).
    mutating func duration(_ y: Y) -> Int? {
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
}
