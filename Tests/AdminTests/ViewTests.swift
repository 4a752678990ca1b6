import AMQP
import Foundation
import JSONPath
import Rules
import Store
import Roles
import Testing

@testable import Admin

/// The admin's pure parts: what a message's entries say its state is, reason groups, forms, JSON, pages.
@Suite struct ViewTests {
    func group(_ kinds: [(String, String)]) -> TimelineGroup {
        let at = Date(timeIntervalSince1970: 1_000)
        return TimelineGroup(cursor: 7, entries: kinds.map {
            TimelineEntry(conversationId: "c1", at: at, kind: TimelineKind(rawValue: $0.0), endpoint: "customer-a", messageId: "m1", rule: "r", detail: $0.1)
        })
    }

    @Test(arguments: [
        ([("received", "update of customer-a/INC1"), ("rule-matched", ""), ("sent", "update to vendor-x: {}")], "sent"),
        ([("received", "update of customer-a/INC1"), ("rule-matched", ""), ("sent", "update to vendor-x (leaves in 1m): {}")], "delayed"),
        ([("received", "update of customer-a/INC1"), ("rule-matched", ""), ("delay-scheduled", "timer")], "delayed"),
        ([("received", "update of customer-a/INC1"), ("no-rule", "no rule matched")], "no-rule"),
        ([("received", "update of customer-a/INC1"), ("dropped", "dropped by rule 'x'")], "dropped"),
        ([("acked", "ok ack of create m to vendor-x")], "acked"),
        ([("ack-error", "error ack of update m to vendor-x"), ("rule-matched", "")], "failed"),
        ([("acked", "ok ack"), ("ack-unhandled", "")], "failed"),
        ([("received", "update of customer-a/INC1"), ("rule-matched", "")], "processed"),
    ])
    func stateOfAMessage(kinds: [(String, String)], expected: String) {
        #expect(FeedItem(group(kinds)).state == expected)
    }

    @Test func typeAndRulesOfAMessage() {
        let item = FeedItem(group([("received", "update of customer-a/INC1"), ("rule-matched", ""), ("sent", "x to y: {}")]))
        #expect(item.type == "update" && item.rules == ["r"] && item.cursor == 7)
    }

    @Test func groupingEntriesReadNewestFirst() {
        let a = TimelineEntry(conversationId: "c1", at: Date(timeIntervalSince1970: 1), kind: .received, detail: "")
        let b = TimelineEntry(conversationId: "c1", at: Date(timeIntervalSince1970: 1), kind: .sent, detail: "")
        let c = TimelineEntry(conversationId: "c2", at: Date(timeIntervalSince1970: 2), kind: .received, detail: "")
        let groups = TimelineGroup.group([(id: 3, entry: c), (id: 2, entry: b), (id: 1, entry: a)])
        #expect(groups.map(\.cursor) == [3, 1])
        #expect(groups[1].entries.map(\.kind.rawValue) == ["received", "sent"])
    }

    /// Entries stored before the typed fields existed are read from their text, as that release wrote it.
    @Test func anOldAckEntryNamesWhatItAnswersFromItsText() {
        func old(_ detail: String) -> TimelineEntry {
            TimelineEntry(conversationId: "c1", at: Date(), kind: .ackError, detail: detail)
        }
        #expect(Legacy.answers(old("error ack of update sb-c1-0a-0 to vendor-x: locked")) == "sb-c1-0a-0")
        #expect(Legacy.answers(old("received")) == nil)
    }

    /// The engine is the only author of what an entry means: the feed's states and types, the answers and
    /// the hop times of the conversation's page and API come from the entries' typed fields, so rewording
    /// every entry's text (or any release doing so) changes none of them.
    @Test func rewordingEveryEntryChangesNoStateHopOrAnswer() throws {
        let config = try ConfigLoader.load(files: [("c.yaml", """
            endpoints:
              customer-a: {ticket_id: $.number}
              vendor-x: {ticket_id: $.key}
            rules:
              - name: to-vendor
                from: customer-a
                send: [{to: vendor-x, type: update, body: {number: {field: $.number}}}]
              - name: later
                from: customer-a
                type: note
                send: [{to: vendor-x, type: note, delay: 1m, body: {n: 1}}]
              - name: retry
                from: vendor-x
                type: ack
                when: {field: $.status, equals: error}
                counters: [{counter: tries, increment: 1}]
            """)], environment: [:])
        let engine = Engine(config: config)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var conversation = ConversationSnapshot(id: "0123456789abcdef0123456789abcdef")
        var timeline: [TimelineEntry] = []
        var groups: [TimelineGroup] = []
        func decide(_ endpoint: String, _ type: String, _ body: String, at: Date, acked: StoredOutbound? = nil) throws -> MessageDecision {
            let json = try JSON.parse(body)
            let event = InboundEvent(endpoint: endpoint, messageId: "m\(groups.count)", type: type, body: json,
                                     ticketId: json["number"]?.stringValue, who: nil)
            let d = try engine.decide(Situation(
                endpoint: endpoint, messageId: "m\(groups.count)", route: 1, event: event, conversation: conversation, acked: acked, now: at))
            conversation = d.next
            timeline += d.timeline
            groups.append(TimelineGroup(cursor: Int64(groups.count + 1), entries: d.timeline))
            return d
        }
        let first = try decide("customer-a", "update", #"{"number":"INC1"}"#, at: t0)
        _ = try decide("customer-a", "note", #"{"number":"INC1"}"#, at: t0.addingTimeInterval(1))
        _ = try decide("vendor-x", "ack", #"{"status":"error"}"#, at: t0.addingTimeInterval(2.5), acked: first.outbox[0])
        _ = try decide("vendor-x", "ack", #"{"status":"ok"}"#, at: t0.addingTimeInterval(4), acked: first.outbox[0])

        func seen(_ timeline: [TimelineEntry], _ groups: [TimelineGroup]) -> [String] {
            let feed = groups.map { FeedItem($0) }.map { "\($0.type) \($0.state) \($0.rules)" }
            let record = ConversationRecord(snapshot: conversation, createdAt: t0, updatedAt: t0, timeline: timeline, outbound: [:], audit: [])
            let views = ConversationView.entries(record).map { "\($0.entry.kind) answers=\($0.answers ?? "-") hop=\($0.hop.map { "\($0)" } ?? "-")" }
            return feed + views
        }
        let before = seen(timeline, groups)
        #expect(before.prefix(4) == ["update sent [\"to-vendor\"]", "note delayed [\"to-vendor\", \"later\"]", "ack failed [\"retry\"]", "ack acked []"])
        #expect(before.contains("acked answers=\(first.outbox[0].messageId) hop=4.0"))
        #expect(before.contains("ack-error answers=\(first.outbox[0].messageId) hop=2.5"))
        func reworded(_ e: TimelineEntry) -> TimelineEntry {
            var e = e
            e.detail = "reworded \(e.detail.count)"
            return e
        }
        let after = seen(timeline.map(reworded), groups.map { TimelineGroup(cursor: $0.cursor, entries: $0.entries.map(reworded)) })
        #expect(after == before)
    }

    @Test func parkedMessagesOfOneCauseShareAGroup() {
        func parked(_ reason: String, body: String) -> ParkedMessage {
            ParkedMessage(Message(body: Data(body.utf8), properties: Properties(messageId: "m", headers: [
                Contract.Header.reason: .string(reason), Contract.Header.parkedAt: .string("2026-12-01T10:00:00.000Z"),
            ])), switchboardUser: "switchboard")
        }
        let a = parked("ack for unknown message 'sb-1': its correlation_id names no message", body: "1")
        let b = parked("ack for unknown message 'sb-2': its correlation_id names no message", body: "2")
        #expect(a.reasonGroup == b.reasonGroup && a.id != b.id)
        #expect(parked("message of 5000 bytes exceeds the limit of 4096 bytes", body: "x").reasonGroup == "message of N bytes exceeds the limit of N bytes")
        // The id is stable: the same parked message read again (e.g. after it was parked again at the end).
        #expect(parked("x", body: "1").id == parked("x", body: "1").id)
    }

    @Test func formsDecodeAndRepeat() {
        let f = Form.parse("ids=a&ids=b&reason=fixed+the%20config&csrf=")
        #expect(f.all("ids") == ["a", "b"] && f.first("reason") == "fixed the config" && f.first("csrf") == "")
    }

    @Test func jsonTextEscapes() {
        #expect(JSONText.object(["a": .string("<\"\n\u{1}>")]).text == #"{"a":"\u003c\"\n\u0001>"}"#)
        #expect(JSONText.dict([("v", .raw("1.50"))]).text == #"{"v":1.50}"#)
    }

    @Test func absentValuesAreLeftOutOfPages() {
        let none: String? = nil
        let m = PageRoutes.present(["a": none as Any, "b": Optional("x") as Any, "list": [["c": none as Any]]]) as! [String: Any]
        #expect(m["a"] == nil && m["b"] as? String == "x")
        #expect((m["list"] as? [[String: Any]])?.first?.isEmpty == true)
        let html = Pages.library.render(PageRoutes.present(["title": "t", "brokerError": none as Any]), withTemplate: "endpoints") ?? ""
        #expect(!html.contains("nil") && !html.contains("Broker:"))
    }

    @Test func signInGoesOnlyToOurOwnPaths() {
        for good in ["/feed?state=failed", "/", "/conversations/abc?x=a%2Fb", "/search?q=INC%201"] { #expect(SafeNext.path(good) == good) }
        let bad: [String?] = [
            "//evil.example/", "https://evil.example/", "/\\evil", nil, "/%09/evil.example", "/\t/evil.example", "/%0d%0a/evil.example",
            "/%0A/evil", "/%2F/evil.example", "/%252F/evil.example", "/%5Cevil.example", "/%255Cevil", "evil", "",
            "/feed//evil", "/%2f%2fevil",
        ]
        for b in bad { #expect(SafeNext.path(b) == "/", "\(b ?? "nil")") }
    }

    @Test func behindATrustedProxyTheClientIsTheAddressItNames() {
        let proxy: Set = ["127.0.0.1"]
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: "203.0.113.9", trusted: proxy) == ClientAddress(address: "203.0.113.9", viaProxy: true))
        // A client's own X-Forwarded-For entries come first; the proxy appends what it saw.
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: "1.2.3.4, 198.51.100.7", trusted: proxy).address == "198.51.100.7")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: "198.51.100.7, 127.0.0.1", trusted: proxy).address == "198.51.100.7")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: nil, trusted: proxy) == ClientAddress(address: "127.0.0.1", viaProxy: true))
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: "not-an-address", trusted: proxy).address == "127.0.0.1")
        // A peer not trusted names nobody.
        #expect(ClientAddress.resolve(peer: "192.0.2.1", forwarded: "203.0.113.9", trusted: proxy) == ClientAddress(address: "192.0.2.1", viaProxy: false))
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwarded: "203.0.113.9", trusted: []).address == "127.0.0.1")
    }

    @Test func everyTemplateRenders() {
        for name in Templates.all.keys {
            #expect(Pages.library.render(["title": "t"], withTemplate: name) != nil, "template \(name)")
        }
    }

    @Test func csrfComparison() {
        #expect(AuthMiddleware.constantTimeEqual("abc", "abc"))
        #expect(!AuthMiddleware.constantTimeEqual("abc", "abd") && !AuthMiddleware.constantTimeEqual("abc", "ab"))
    }

    @Test func tokensAreKnownByTheirDigestOnly() {
        let (token, sha) = AdminPasswords.newToken()
        var s = AdminSettings(location: SourceLocation(file: "t", line: 1))
        s.tokens = [AdminToken(name: "ci", role: .viewer, sha256: sha, location: s.location),
                    AdminToken(name: "unset", role: .operator, sha256: "", location: s.location)]
        let accounts = Accounts(s)
        #expect(accounts.token(token)?.name == "ci")
        #expect(accounts.token("") == nil && accounts.token(sha) == nil)
    }

    @Test func passwordsVerifyWithBcrypt() async {
        var s = AdminSettings(location: SourceLocation(file: "t", line: 1))
        s.users = [AdminUser(name: "alice", role: .operator, passwordHash: AdminPasswords.hash("pw", cost: 5), location: s.location),
                   AdminUser(name: "nohash", role: .viewer, passwordHash: "", location: s.location)]
        let accounts = Accounts(s)
        func name(_ v: Accounts.Verdict) -> String? { if case .signedIn(let u) = v { return u.name } else { return nil } }
        #expect(name(await accounts.verify(user: "alice", password: "pw")) == "alice")
        #expect(name(await accounts.verify(user: "alice", password: "wrong")) == nil)
        #expect(name(await accounts.verify(user: "nohash", password: "")) == nil)
        #expect(name(await accounts.verify(user: "nobody", password: "pw")) == nil)
        #expect(name(await accounts.verify(user: String(repeating: "a", count: 10_000), password: "pw")) == nil)
        // An unknown name is checked against a hash of the users' own cost (timing tells no names apart).
        #expect(AdminSettings.bcryptCost(accounts.decoy) == 5)
        #expect(AdminSettings.bcryptCost(Accounts.decoy(for: [])) == 12)
    }

    @Test func bcryptRunsAtMostSoManyAtOnce() {
        let gate = BcryptGate(limit: 2)
        #expect(gate.enter() && gate.enter())
        #expect(!gate.enter())
        gate.leave()
        #expect(gate.enter())
    }

    @Test func signInBacksOffPerUserAndAddress() {
        let limiter = SignInLimiter()
        let now = Date()
        for _ in 0..<SignInLimiter.free { limiter.failed(user: "a", address: "1.1.1.1", now: now) }
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now) == SignInLimiter.base)
        // The same user from elsewhere, and another user from there, are not held back.
        #expect(limiter.wait(user: "a", address: "2.2.2.2", now: now) == nil)
        #expect(limiter.wait(user: "b", address: "1.1.1.1", now: now) == nil)
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now.addingTimeInterval(SignInLimiter.base)) == nil)
        // Each further failure doubles the wait, up to the cap; a success forgets.
        limiter.failed(user: "a", address: "1.1.1.1", now: now)
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now) == 2 * SignInLimiter.base)
        for _ in 0..<20 { limiter.failed(user: "a", address: "1.1.1.1", now: now) }
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now) == SignInLimiter.cap)
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now.addingTimeInterval(SignInLimiter.forget)) == nil)
        limiter.succeeded(user: "a", address: "1.1.1.1")
        #expect(limiter.wait(user: "a", address: "1.1.1.1", now: now) == nil)
    }
}
