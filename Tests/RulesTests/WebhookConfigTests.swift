import Foundation
import Testing

@testable import Rules

/// `ingress:` and `endpoints.<name>.webhook` (issue 26): what loads, and errors that name file, line and field.
@Suite struct WebhookConfigTests {
    static let ingress = """
        ingress:
          listen: 127.0.0.1:8444
          plain_http: true
          broker_url: amqp://sb-ingress:pw@localhost/
        """

    func load(_ text: String) throws(ConfigErrors) -> SwitchboardConfig {
        try ConfigLoader.load(files: [("hooks.yaml", text)], environment: [:])
    }

    func errors(_ text: String) -> [String] {
        do {
            _ = try load(text)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func aJiraWebhookWithHMACLoadsWithItsDeliveryIdHeader() throws {
        let config = try load(Self.ingress + """

            endpoints:
              jira:
                ticket_id: $.issue.key
                webhook:
                  sender: jira
                  auth: hmac
                  signature_header: X-Hub-Signature
                  secret_env: JIRA_SECRET
                  max_bytes: 65536
            """)
        let w = try #require(config.endpoints["jira"]?.webhook)
        #expect(w.deliveryIdHeader == "X-Atlassian-Webhook-Identifier")
        #expect(w.auth == .hmac(header: "X-Hub-Signature", prefix: "sha256=", algorithm: .sha256, secret: .env("JIRA_SECRET")))
        #expect(w.maxBytes == 65536)
        #expect(config.ingress?.brokerURL == "amqp://sb-ingress:pw@localhost/")
    }

    @Test func aGenericWebhookHasNoDeliveryIdUnlessOneIsNamed() throws {
        let sha = String(repeating: "ab", count: 32)
        let config = try load(Self.ingress + """

            endpoints:
              sn:
                ticket_id: $.number
                webhook: {auth: bearer, token_sha256: \(sha)}
              other:
                ticket_id: $.number
                webhook: {auth: url_token, token_sha256: \(sha), delivery_id: X-Request-Id}
            """)
        #expect(config.endpoints["sn"]?.webhook?.deliveryIdHeader == nil)
        #expect(config.endpoints["sn"]?.webhook?.auth == .bearer(sha256: sha))
        #expect(config.endpoints["other"]?.webhook?.deliveryIdHeader == "X-Request-Id")
    }

    @Test func mistakesAreNamedByLineAndField() {
        let found = errors(Self.ingress + """

            endpoints:
              a:
                ticket_id: $.number
                webhook: {auth: bearer}
              b:
                ticket_id: $.number
                webhook: {auth: hmac}
              c:
                ticket_id: $.number
                webhook: {auth: basic, user: x, password_hash: plain}
              d:
                ticket_id: $.number
                webhook: {auth: magic, token_sha256: nothex}
              e:
                ticket_id: $.number
                webhook: {auth: bearer, token_sha256: \(String(repeating: "ab", count: 32)), max_bytes: 99999999}
            """)
        #expect(found.contains { $0.hasPrefix("hooks.yaml:8:") && $0.contains("endpoints.a.webhook: auth bearer needs token_sha256") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.b.webhook: auth hmac needs secret_file or secret_env") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.c.webhook.password_hash is not a bcrypt hash") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.d.webhook.auth: expected bearer, url_token, basic or hmac") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.d.webhook.token_sha256 is not 64 hex digits") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.e.webhook.max_bytes (99999999) is over settings.max_message_bytes") }, "\(found)")
    }

    @Test func aWebhookNeedsAnIngressAndAnIngressItsOwnBrokerUserAndTLS() {
        let sha = String(repeating: "ab", count: 32)
        #expect(errors("""
            endpoints:
              a:
                ticket_id: $.number
                webhook: {auth: bearer, token_sha256: \(sha)}
            """).contains { $0.contains("endpoint 'a' has a webhook but the configuration has no ingress section") })
        let found = errors("""
            ingress:
              listen: 0.0.0.0:8444
              plain_http: true
            endpoints:
              a: {ticket_id: $.number}
            """)
        #expect(found.contains { $0.contains("ingress needs broker_url") }, "\(found)")
        #expect(found.contains { $0.contains("plain_http is allowed only on a loopback address") }, "\(found)")
    }

    @Test func aDeliveryIdIsRememberedAtLeast72Hours() {
        let found = errors(Self.ingress + """

            settings:
              retention_dedupe_days: 2
            endpoints:
              jira:
                ticket_id: $.issue.key
                webhook: {sender: jira, auth: hmac, secret_file: /run/secrets/jira}
            """)
        #expect(found.contains { $0.contains("retention_dedupe_days is 2; a delivery id is remembered for at least 3 days") }, "\(found)")
    }
}

/// `endpoints.<name>.rest` (issue 26, REST delivery).
@Suite struct RestConfigTests {
    func load(_ text: String) throws(ConfigErrors) -> SwitchboardConfig {
        try ConfigLoader.load(files: [("rest.yaml", text)], environment: [:])
    }

    func errors(_ text: String) -> [String] {
        do {
            _ = try ConfigLoader.load(files: [("rest.yaml", text)], environment: [:])
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func aServiceNowEndpointLoadsWithItsDefaults() throws {
        let config = try ConfigLoader.load(files: [("rest.yaml", """
            endpoints:
              sn:
                ticket_id: $.sys_id
                rest: {profile: servicenow-table, base_url: "https://acme.service-now.com/", auth: basic, user: u, password_env: SN_PW}
            """)], environment: [:])
        let e = try #require(config.endpoints["sn"])
        let rest = try #require(e.rest)
        #expect(rest.baseURL == "https://acme.service-now.com" && rest.table == "incident" && rest.referenceField == "sys_id")
        #expect(rest.keyField == "result.sys_id" && rest.auth == .basic(user: "u", password: .env("SN_PW")))
        #expect(rest.correlationField == "correlation_id")
        // Its acks carry a create's ticket at $.key: that links it without a rule.
        #expect(e.ackKey?.source == "$.key")
    }

    @Test func genericRestLooksCreatesUpOnlyWhereItsLookupPathSaysHow() throws {
        func endpoint(_ rest: String) -> String {
            "endpoints:\n  api:\n    ticket_id: $.id\n    rest: {profile: generic-rest, base_url: \"https://api.example\", auth: bearer, token_env: T\(rest)}\n"
        }
        let found = try #require(try load(endpoint(", correlation_field: ext, lookup_path: \"/tickets?ext={correlation}\"")).endpoints["api"]?.rest)
        #expect(found.lookupPath == "/tickets?ext={correlation}" && found.lookupKey?.source == "$[0].id" && found.correlationField == "ext")
        let keyed = try #require(try load(endpoint(", correlation_field: ext, lookup_path: \"/s?q={correlation}\", lookup_key: \"$.items[0].ref\"")).endpoints["api"]?.rest)
        #expect(keyed.lookupKey?.source == "$.items[0].ref")
        // Without a lookup_path a correlation field could never be looked up: creates are not looked up.
        #expect(try #require(try load(endpoint(", correlation_field: ext")).endpoints["api"]?.rest).correlationField == nil)
        #expect(errors(endpoint(", lookup_path: \"/s?q={correlation}\"")).contains { $0.hasPrefix("rest.yaml:4:") && $0.contains("lookup_path needs correlation_field") })
        #expect(errors(endpoint(", correlation_field: ext, lookup_path: /s")).contains { $0.contains("endpoints.api.rest.lookup_path: a path starting with / that names {correlation}") })
        let jira = "endpoints:\n  j:\n    ticket_id: $.key\n    rest: {profile: jira-cloud, base_url: \"https://x.atlassian.net\", auth: bearer, token_env: T, lookup_path: \"/x?{correlation}\"}\n"
        #expect(errors(jira).contains { $0.contains("lookup_path and lookup_key are for generic-rest") })
    }

    @Test func oauth2ClientCredentialsAndTheWaitSettingsLoadAndAreChecked() throws {
        let config = try ConfigLoader.load(files: [("rest.yaml", """
            endpoints:
              sn:
                ticket_id: $.sys_id
                rest:
                  profile: servicenow-table
                  base_url: https://acme.service-now.com
                  auth: oauth2
                  token_url: https://acme.service-now.com/oauth_token.do
                  client_id: sb
                  client_secret_file: /run/secrets/sn
                  wait_budget: 30m
                  max_wait: 2m
            """)], environment: [:])
        let rest = try #require(config.endpoints["sn"]?.rest)
        #expect(rest.auth == .oauth2(tokenURL: "https://acme.service-now.com/oauth_token.do", clientId: "sb", secret: .file("/run/secrets/sn"), scope: nil))
        #expect(rest.waitBudgetMs == 1_800_000 && rest.maxWaitMs == 120_000)
        // The delay queues the waits use are declared with the configuration's.
        #expect(config.outboundDelays.isSuperset(of: RestSettings.waitBuckets))
        let found = errors("""
            endpoints:
              a:
                ticket_id: $.id
                rest: {profile: generic-rest, base_url: "https://api.example.com", auth: oauth2, token_url: "http://auth.example.com/t", client_id: x, client_secret_env: S, max_wait: 2h}
            """)
        #expect(found.contains { $0.contains("endpoints.a.rest.token_url 'http://auth.example.com/t' is not an https:// URL") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.a.rest.max_wait: between 1s and 1h") }, "\(found)")
        let codes = errors("""
            endpoints:
              a:
                ticket_id: $.id
                rest: {profile: generic-rest, base_url: "https://api.example.com", auth: bearer, token_env: T, retry_codes: [409, 500], success: {equals: ok}}
            """)
        #expect(codes.contains { $0.contains("endpoints.a.rest.retry_codes: only 401, 403 and 409 are configurable (500's meaning is fixed)") }, "\(codes)")
        #expect(codes.contains { $0.contains("endpoints.a.rest.success needs field") }, "\(codes)")
    }

    @Test func plainHTTPOnlyToLoopbackAndAuthIsRequired() {
        let found = errors("""
            endpoints:
              a:
                ticket_id: $.id
                rest: {profile: generic-rest, base_url: "http://api.example.com", auth: bearer, token_env: T}
              b:
                ticket_id: $.id
                rest: {profile: jira-cloud, base_url: "https://x.atlassian.net"}
              c:
                ticket_id: $.id
                rest: {profile: soap, base_url: "https://x", auth: basic}
            """)
        #expect(found.contains { $0.contains("endpoints.a.rest.base_url 'http://api.example.com' is not an https:// URL") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.b.rest needs auth: basic, bearer or oauth2") }, "\(found)")
        #expect(found.contains { $0.contains("endpoints.c.rest.profile: expected servicenow-table, jira-cloud, generic-rest") }, "\(found)")
    }
}
