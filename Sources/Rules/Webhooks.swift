import Foundation
import JSONPath

/// The webhook listener (`ingress:`, issue 26): where tools without an ESB in front of them (a Jira
/// webhook, a ServiceNow business rule's REST message) post their events. The ingress role authenticates
/// each request per endpoint, publishes the body to `sb.in` like an ESB would (as a broker user of its own)
/// and answers once the broker confirmed it.
package struct IngressSettings: Sendable {
    package var listen = "127.0.0.1:8444"
    package var tlsCertFile: String?
    package var tlsKeyFile: String?
    /// Plain HTTP, allowed only on a loopback address (behind a TLS-terminating proxy on the same host).
    package var plainHTTP = false
    /// Its own broker user, which may publish to `sb.in` only (Deploy/rabbitmq/users.sh ingress): never the
    /// user Switchboard publishes as, whose parked messages it trusts as its own.
    package var brokerURL = ""
    /// How long the broker may take to confirm a request's message before the sender is told 503.
    package var confirmTimeoutMs = 5000
    /// What a 503 (broker unavailable) asks the sender to wait, in its Retry-After header.
    package var retryAfterSeconds = 5
    package var location: SourceLocation

    package init(location: SourceLocation) { self.location = location }
}

/// Where a secret is read from when the ingress starts: never written in the configuration itself.
package enum SecretSource: Sendable, Equatable, CustomStringConvertible {
    case file(String)
    case env(String)

    package var description: String {
        switch self {
        case .file(let path): "file \(path)"
        case .env(let name): "environment variable \(name)"
        }
    }
}

/// An endpoint's webhook (`endpoints.<name>.webhook`): how a request proves it comes from that endpoint,
/// which header names the delivery (for de-duplication), and how large a body may be.
package struct WebhookSettings: Sendable {
    package enum Auth: Sendable, Equatable {
        /// `Authorization: Bearer <token>`; the configuration holds the token's SHA-256 only.
        case bearer(sha256: String)
        /// The token as the last path segment (`POST /hooks/<endpoint>/<token>`), for senders that cannot set
        /// a header; the configuration holds its SHA-256 only.
        case urlToken(sha256: String)
        /// `Authorization: Basic`, checked against a bcrypt hash.
        case basic(user: String, passwordHash: String)
        /// An HMAC of the raw body in a header (`sha256=<hex>` as GitHub and Jira send it), with a shared secret.
        case hmac(header: String, prefix: String, algorithm: HMACAlgorithm, secret: SecretSource)

        package var name: String {
            switch self {
            case .bearer: "bearer"
            case .urlToken: "url_token"
            case .basic: "basic"
            case .hmac: "hmac"
            }
        }
    }

    package enum HMACAlgorithm: String, Sendable, Equatable { case sha256, sha1 }

    /// Who sends: `jira` presets the delivery id header (X-Atlassian-Webhook-Identifier); `generic` presets nothing.
    package var sender = "generic"
    package var auth: Auth
    /// The request header whose value is the delivery's id, the same across the sender's retries: it becomes
    /// the message_id, so a retried delivery is applied once (processed ids are kept retention_dedupe_days).
    package var deliveryIdHeader: String?
    /// The largest body taken (413 above it); at most settings.max_message_bytes.
    package var maxBytes: Int
    package var location: SourceLocation

    package init(auth: Auth, maxBytes: Int, location: SourceLocation) {
        self.auth = auth
        self.maxBytes = maxBytes
        self.location = location
    }

    /// The delivery id header of a known sender.
    package static func deliveryIdHeader(sender: String) -> String? {
        sender == "jira" ? "X-Atlassian-Webhook-Identifier" : nil
    }

    package static let senders = ["generic", "jira", "servicenow"]
}

/// An endpoint delivered over REST (`endpoints.<name>.rest`, issue 26): Switchboard itself sends that
/// endpoint's outbound messages to its API (no ESB consumes `sb.out.<name>`), and every answer comes
/// back as an ack, so the ack rules and retry policies work for it unchanged.
package struct RestSettings: @unchecked Sendable {
    package enum Profile: String, Sendable, CaseIterable {
        case servicenowTable = "servicenow-table"
        case jiraCloud = "jira-cloud"
        case genericRest = "generic-rest"
    }

    package enum Auth: Sendable, Equatable {
        case basic(user: String, password: SecretSource)
        case bearer(SecretSource)
        /// OAuth 2.0 client credentials: a token from `tokenURL` (the client's id and secret as Basic), cached
        /// until shortly before it expires and renewed when the API answers 401.
        case oauth2(tokenURL: String, clientId: String, secret: SecretSource, scope: String?)
    }

    package var profile: Profile
    /// `https://host[:port]` (plain `http` only to a loopback address).
    package var baseURL: String
    package var auth: Auth
    /// servicenow-table: the table written (`/api/now/table/<table>`).
    package var table = "incident"
    /// Where an outbound message's body names the target's ticket (present: an update of it; absent: a create).
    package var referenceField: String
    /// Where a create's answer names the created ticket (it becomes the conversation's reference).
    package var keyField: String
    /// generic-rest: where creates go and where an update goes (`{ref}` is the reference), and its method.
    package var createPath = "/"
    package var updatePath = "/{ref}"
    package var updateMethod = "PATCH"
    /// servicenow-table, generic-rest: the field of a create's body that names it (its correlation value): after an
    /// unknown outcome (no answer) or a redelivery the record is looked up by it before anything is sent
    /// again, and adopted when found. nil: never looked up.
    package var correlationField: String?
    /// generic-rest: how a create is looked up (`lookup_path`, a GET of `<base_url><path>` with `{correlation}`
    /// the correlation value, percent-encoded) and where the answer names the ticket found (`lookup_key`,
    /// default `$[0].<key_field>`). nil: creates are never looked up.
    package var lookupPath: String?
    package var lookupKey: JSONPath?
    package var timeoutMs = 10_000
    /// A client certificate and its key (PEM files) presented to the API (mutual TLS); nil: none.
    package var clientCertFile: String?
    package var clientKeyFile: String?
    /// CA certificates (PEM) the API's certificate is verified against instead of the system's.
    package var caFile: String?
    /// Of 401, 403 and 409, those worth another attempt for this endpoint (`retry_codes`): its acks say
    /// `retryable: true` for them. The other codes' meaning is fixed (`RestDeliveryHandler.retryable`).
    package var retryCodes: Set<Int> = []
    /// When a 2xx answer counts as success (`success`): its body has the field, or the field has the value.
    /// nil: every 2xx.
    package var success: (path: JSONPath, equals: JSON?)?
    package static let configurableCodes: Set<Int> = [401, 403, 409]
    /// Refusals of an update or comment that hold their ticket (`hold_ticket_on`, e.g. 403 for ServiceNow's
    /// business-rule lock): the refusal goes to the rules as an ack, and the ticket's later messages wait
    /// until a retry policy's resend of that ticket goes through, or `holdForMs` passes.
    package var holdTicketOn: Set<Int> = []
    package var holdForMs = 900_000
    /// How long one message may wait in the delivery for rate limits and circuits (its waits added up)
    /// before its refusal goes to the rules as an ack (`wait_budget`).
    package var waitBudgetMs = 3_600_000
    /// The longest single wait: a longer Retry-After is waited out in steps (`max_wait`).
    package var maxWaitMs = 600_000
    package var location: SourceLocation

    /// The delay queues a waiting REST message waits in (TTLs, ms): declared when any endpoint has `rest`.
    package static let waitBuckets = [1_000, 2_000, 5_000, 15_000, 60_000, 300_000]

    package init(profile: Profile, baseURL: String, auth: Auth, location: SourceLocation) {
        self.profile = profile
        self.baseURL = baseURL
        self.auth = auth
        self.location = location
        switch profile {
        case .servicenowTable:
            referenceField = "sys_id"
            keyField = "result.sys_id"
            correlationField = "correlation_id"
        case .jiraCloud:
            referenceField = "key"
            keyField = "key"
        case .genericRest:
            referenceField = "id"
            keyField = "id"
        }
    }
}
