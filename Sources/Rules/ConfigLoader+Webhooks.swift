import Foundation
import JSONPath

// The webhook listener (`ingress:`) and each endpoint's `webhook:`, with errors named by file and line.
extension ConfigLoader {
    mutating func parseIngress(_ y: Y) -> IngressSettings? {
        guard let m = mapping(y, "ingress") else { return nil }
        var s = IngressSettings(location: y.location)
        for (key, value) in m {
            switch key.string {
            case "listen":
                if let v = string(value) {
                    if AdminSettings.hostPort(v) == nil { error(value, "ingress.listen '\(v)' is not host:port (e.g. 0.0.0.0:8444)") }
                    s.listen = v
                }
            case "tls_cert_file": if let v = string(value) { s.tlsCertFile = v.isEmpty ? nil : v }
            case "tls_key_file": if let v = string(value) { s.tlsKeyFile = v.isEmpty ? nil : v }
            case "plain_http": if let v = bool(value) { s.plainHTTP = v }
            case "broker_url": if let v = string(value) { s.brokerURL = v }
            case "confirm_timeout_ms": if let v = int(value, key: "ingress.\(key.string)", min: 100, max: 60_000) { s.confirmTimeoutMs = v }
            case "retry_after_seconds": if let v = int(value, key: "ingress.\(key.string)", min: 1, max: 3600) { s.retryAfterSeconds = v }
            default:
                unknownKey(key, in: "ingress", allowed: "listen, tls_cert_file, tls_key_file, plain_http, broker_url, confirm_timeout_ms, retry_after_seconds")
            }
        }
        if s.brokerURL.isEmpty {
            error(y, "ingress needs broker_url: a broker user of its own that may publish to sb.in only (Deploy/rabbitmq/users.sh ingress)")
        }
        if let (host, _) = AdminSettings.hostPort(s.listen) {
            if s.plainHTTP && !AdminSettings.isLoopback(host) {
                error(y, "ingress: plain_http is allowed only on a loopback address (listen is \(s.listen)); give tls_cert_file and tls_key_file")
            }
            if !s.plainHTTP && (s.tlsCertFile == nil || s.tlsKeyFile == nil) {
                error(y, "ingress: HTTPS needs tls_cert_file and tls_key_file (or plain_http: true on a loopback address behind a TLS proxy)")
            }
        }
        return s
    }

    /// `endpoints.<name>.webhook`: `auth` (bearer, url_token, basic or hmac) with what that kind needs,
    /// `sender`, `delivery_id`, `max_bytes`.
    mutating func parseWebhook(_ endpoint: String, _ y: Y, maxMessageBytes: Int) -> WebhookSettings? {
        guard let m = mapping(y, "webhook of '\(endpoint)'") else { return nil }
        let context = "endpoints.\(endpoint).webhook"
        var kind: String?, sha256: String?, user: String?, passwordHash: String?
        var header = "X-Hub-Signature-256", prefix = "sha256=", algorithm = WebhookSettings.HMACAlgorithm.sha256
        var secret: SecretSource?, sender = "generic", deliveryId: String?, sawDeliveryId = false
        var maxBytes = min(1 << 20, maxMessageBytes)
        for (key, value) in m {
            switch key.string {
            case "auth":
                if let v = string(value) {
                    if ["bearer", "url_token", "basic", "hmac"].contains(v) { kind = v } else { error(value, "\(context).auth: expected bearer, url_token, basic or hmac") }
                }
            case "token_sha256":
                if let v = string(value)?.lowercased() {
                    if v.count != 64 || !v.allSatisfy(\.isHexDigit) {
                        error(value, "\(context).token_sha256 is not 64 hex digits (make a token with `switchboard ingress new-token`)")
                    }
                    sha256 = v
                }
            case "user": user = string(value)
            case "password_hash":
                if let v = string(value) {
                    if !(v.hasPrefix("$2a$") || v.hasPrefix("$2b$") || v.hasPrefix("$2y$")) {
                        error(value, "\(context).password_hash is not a bcrypt hash (make one with `switchboard admin hash-password`)")
                    }
                    passwordHash = v
                }
            case "signature_header":
                if let v = string(value) {
                    if v.isEmpty || !v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) { error(value, "\(context).signature_header '\(v)' is not a header name") }
                    header = v
                }
            case "signature_prefix": if let v = string(value) { prefix = v }
            case "algorithm":
                if let v = string(value) {
                    if let a = WebhookSettings.HMACAlgorithm(rawValue: v) { algorithm = a } else { error(value, "\(context).algorithm: expected sha256 or sha1") }
                }
            case "secret_file": if let v = string(value), !v.isEmpty { secret = .file(v) }
            case "secret_env": if let v = string(value), !v.isEmpty { secret = .env(v) }
            case "sender":
                if let v = string(value) {
                    if WebhookSettings.senders.contains(v) { sender = v } else { error(value, "\(context).sender: expected \(WebhookSettings.senders.joined(separator: ", "))") }
                }
            case "delivery_id":
                sawDeliveryId = true
                if let v = string(value) {
                    if !v.isEmpty && !v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) { error(value, "\(context).delivery_id '\(v)' is not a header name") }
                    deliveryId = v.isEmpty ? nil : v
                }
            case "max_bytes":
                if let v = int(value, key: "\(context).max_bytes", min: 1) {
                    if v > maxMessageBytes { error(value, "\(context).max_bytes (\(v)) is over settings.max_message_bytes (\(maxMessageBytes)): intake would park what the ingress took") }
                    maxBytes = v
                }
            default:
                unknownKey(key, in: context, allowed: "auth, token_sha256, user, password_hash, signature_header, signature_prefix, algorithm, secret_file, secret_env, sender, delivery_id, max_bytes")
            }
        }
        let auth: WebhookSettings.Auth
        switch kind {
        case "bearer", "url_token":
            guard let sha256 else {
                error(y, "\(context): auth \(kind!) needs token_sha256 (make a token with `switchboard ingress new-token`)")
                return nil
            }
            auth = kind == "bearer" ? .bearer(sha256: sha256) : .urlToken(sha256: sha256)
        case "basic":
            guard let user, !user.isEmpty, let passwordHash else {
                error(y, "\(context): auth basic needs user and password_hash")
                return nil
            }
            auth = .basic(user: user, passwordHash: passwordHash)
        case "hmac":
            guard let secret else {
                error(y, "\(context): auth hmac needs secret_file or secret_env (the shared secret is never written in the configuration)")
                return nil
            }
            auth = .hmac(header: header, prefix: prefix, algorithm: algorithm, secret: secret)
        default:
            error(y, "\(context) needs auth: bearer, url_token, basic or hmac (every webhook is authenticated)")
            return nil
        }
        var w = WebhookSettings(auth: auth, maxBytes: maxBytes, location: y.location)
        w.sender = sender
        w.deliveryIdHeader = sawDeliveryId ? deliveryId : WebhookSettings.deliveryIdHeader(sender: sender)
        return w
    }
}

extension ConfigLoader {
    /// An https URL (plain http only to a loopback address), else an error naming `key`.
    mutating func httpsURL(_ value: Y, key: String) -> String? {
        guard let v = string(value) else { return nil }
        let url = URL(string: v)
        let host = url?.host ?? ""
        if url?.scheme == "https" && !host.isEmpty { return v }
        if url?.scheme == "http" && AdminSettings.isLoopback(host) { return v }
        error(value, "\(key) '\(v)' is not an https:// URL (plain http only to a loopback address)")
        return nil
    }

    /// `endpoints.<name>.rest`: `profile`, `base_url`, `auth` (basic with `user` and `password_env`/`password_file`,
    /// bearer with `token_env`/`token_file`, or oauth2 with `token_url`, `client_id`, `client_secret_env`/
    /// `client_secret_file` and `scope`), `table`, `reference_field`, `key_field`, `create_path`,
    /// `update_path`, `update_method`, `timeout_ms`, `wait_budget`, `max_wait`.
    mutating func parseRest(_ endpoint: String, _ y: Y) -> RestSettings? {
        guard let m = mapping(y, "rest of '\(endpoint)'") else { return nil }
        let context = "endpoints.\(endpoint).rest"
        var profile: RestSettings.Profile?, baseURL: String?, kind: String?, user: String?, secret: SecretSource?
        var table: String?, referenceField: String?, keyField: String?, correlationField: String?, createPath: String?, updatePath: String?
        var updateMethod: String?, timeoutMs: Int?, waitBudgetMs: Int?, maxWaitMs: Int?, tokenURL: String?, clientId: String?, scope: String?
        var clientCertFile: String?, clientKeyFile: String?, caFile: String?, lookupPath: String?, lookupKey: JSONPath?
        var retryCodes: Set<Int> = [], success: (path: JSONPath, equals: JSON?)?, holdTicketOn: Set<Int> = [], holdForMs: Int?
        for (key, value) in m {
            switch key.string {
            case "profile":
                if let v = string(value) {
                    profile = RestSettings.Profile(rawValue: v)
                    if profile == nil { error(value, "\(context).profile: expected \(RestSettings.Profile.allCases.map(\.rawValue).joined(separator: ", "))") }
                }
            case "base_url": baseURL = httpsURL(value, key: "\(context).base_url")
            case "token_url": tokenURL = httpsURL(value, key: "\(context).token_url")
            case "client_id": clientId = string(value)
            case "client_cert_file": clientCertFile = string(value)
            case "client_key_file": clientKeyFile = string(value)
            case "ca_file": caFile = string(value)
            case "retry_codes":
                for item in sequence(value, "\(context).retry_codes") ?? [] {
                    if let code = int(item, key: "\(context).retry_codes", min: 100, max: 599) {
                        if RestSettings.configurableCodes.contains(code) { retryCodes.insert(code) } else {
                            error(item, "\(context).retry_codes: only 401, 403 and 409 are configurable (\(code)'s meaning is fixed)")
                        }
                    }
                }
            case "hold_ticket_on":
                for item in sequence(value, "\(context).hold_ticket_on") ?? [] {
                    if let code = int(item, key: "\(context).hold_ticket_on", min: 400, max: 599) { holdTicketOn.insert(code) }
                }
            case "hold_for": holdForMs = duration(value)
            case "success":
                if let m = mapping(value, "\(context).success") {
                    var path: JSONPath?, equals: JSON?, sawExists = false
                    for (k, v) in m {
                        switch k.string {
                        case "field": path = self.path(v)
                        case "equals": equals = json(v)
                        case "exists":
                            sawExists = true
                            if v.string != "true" { error(v, "\(context).success.exists: only true (the field is present)") }
                        default: unknownKey(k, in: "\(context).success", allowed: "field, equals, exists")
                        }
                    }
                    if let path {
                        if (equals == nil) == !sawExists { success = (path, equals) } else {
                            error(value, "\(context).success needs field and one of equals or exists: true")
                        }
                    } else {
                        error(value, "\(context).success needs field (a JSONPath into the answer)")
                    }
                }
            case "scope": scope = string(value)
            case "client_secret_env": if let v = string(value), !v.isEmpty { secret = .env(v) }
            case "client_secret_file": if let v = string(value), !v.isEmpty { secret = .file(v) }
            case "auth":
                if let v = string(value) {
                    if ["basic", "bearer", "oauth2"].contains(v) { kind = v } else { error(value, "\(context).auth: expected basic, bearer or oauth2") }
                }
            case "user": user = string(value)
            case "password_env", "token_env": if let v = string(value), !v.isEmpty { secret = .env(v) }
            case "password_file", "token_file": if let v = string(value), !v.isEmpty { secret = .file(v) }
            case "table": table = string(value)
            case "reference_field": referenceField = string(value)
            case "key_field": keyField = string(value)
            case "correlation_field": correlationField = string(value)
            case "create_path": createPath = string(value)
            case "lookup_path":
                if let v = string(value) {
                    if v.hasPrefix("/"), v.contains("{correlation}") { lookupPath = v } else {
                        error(value, "\(context).lookup_path: a path starting with / that names {correlation}, e.g. /tickets?external_id={correlation}")
                    }
                }
            case "lookup_key": lookupKey = path(value)
            case "update_path": updatePath = string(value)
            case "update_method":
                if let v = string(value)?.uppercased() {
                    if ["PATCH", "PUT", "POST"].contains(v) { updateMethod = v } else { error(value, "\(context).update_method: expected PATCH, PUT or POST") }
                }
            case "timeout_ms": timeoutMs = int(value, key: "\(context).timeout_ms", min: 100, max: 600_000)
            case "wait_budget": waitBudgetMs = duration(value)
            case "max_wait":
                if let ms = duration(value) {
                    if ms < 1_000 || ms > 3_600_000 { error(value, "\(context).max_wait: between 1s and 1h") } else { maxWaitMs = ms }
                }
            default:
                unknownKey(key, in: context, allowed: "profile, base_url, auth, user, password_env, password_file, token_env, token_file, table, reference_field, key_field, correlation_field, lookup_path, lookup_key, create_path, update_path, update_method, timeout_ms, wait_budget, max_wait, token_url, client_id, client_secret_env, client_secret_file, scope, client_cert_file, client_key_file, ca_file, retry_codes, success, hold_ticket_on, hold_for")
            }
        }
        guard let profile else {
            error(y, "\(context) needs profile: \(RestSettings.Profile.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        guard let baseURL else {
            error(y, "\(context) needs base_url (https://...)")
            return nil
        }
        let auth: RestSettings.Auth
        switch kind {
        case "basic":
            guard let user, !user.isEmpty, let secret else {
                error(y, "\(context): auth basic needs user and password_env or password_file")
                return nil
            }
            auth = .basic(user: user, password: secret)
        case "bearer":
            guard let secret else {
                error(y, "\(context): auth bearer needs token_env or token_file")
                return nil
            }
            auth = .bearer(secret)
        case "oauth2":
            guard let tokenURL, let clientId, !clientId.isEmpty, let secret else {
                error(y, "\(context): auth oauth2 needs token_url, client_id and client_secret_env or client_secret_file")
                return nil
            }
            auth = .oauth2(tokenURL: tokenURL, clientId: clientId, secret: secret, scope: scope)
        default:
            error(y, "\(context) needs auth: basic, bearer or oauth2 (secrets from the environment or a file)")
            return nil
        }
        var r = RestSettings(profile: profile, baseURL: baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL, auth: auth, location: y.location)
        if let table { r.table = table }
        if let referenceField { r.referenceField = referenceField }
        if let keyField { r.keyField = keyField }
        if let correlationField { r.correlationField = correlationField.isEmpty ? nil : correlationField }
        if profile == .genericRest {
            // A create is looked up only where the API says how: a query by the correlation value.
            if lookupPath != nil, r.correlationField == nil {
                error(y, "\(context): lookup_path needs correlation_field (the field of a create's body it looks up by)")
            }
            if lookupPath == nil { r.correlationField = nil }
            r.lookupPath = lookupPath
            r.lookupKey = lookupKey ?? (try? JSONPath("$[0]." + r.keyField))
        } else if lookupPath != nil || lookupKey != nil {
            error(y, "\(context): lookup_path and lookup_key are for generic-rest (\(profile.rawValue) looks creates up its own way)")
        }
        if let createPath { r.createPath = createPath }
        if let updatePath { r.updatePath = updatePath }
        if let updateMethod { r.updateMethod = updateMethod }
        if let timeoutMs { r.timeoutMs = timeoutMs }
        if let waitBudgetMs { r.waitBudgetMs = waitBudgetMs }
        if let maxWaitMs { r.maxWaitMs = maxWaitMs }
        if (clientCertFile == nil) != (clientKeyFile == nil) {
            error(y, "\(context): a client certificate needs both client_cert_file and client_key_file")
        }
        r.clientCertFile = clientCertFile
        r.clientKeyFile = clientKeyFile
        r.caFile = caFile
        r.retryCodes = retryCodes
        r.success = success
        r.holdTicketOn = holdTicketOn
        if let holdForMs { r.holdForMs = holdForMs }
        return r
    }
}
