import AMQP
import Foundation
import JSONPath
import Testing

@testable import Roles

/// Replay trusts only what Switchboard wrote: our parking is signed with our broker user (`user_id`,
/// which the broker checks); what the broker dead-lettered on an ESB's behalf goes back only to the queue
/// it died in, whatever its `x-sb-*` headers say.
@Suite struct ReplayTrustTests {
    let us = "switchboard"

    /// The forged message of the issue: an ESB's own message, published to sb.in with an expiration, whose
    /// `x-sb-original` names another endpoint's outbound queue and another ESB's user; it expired in its
    /// inbound queue and the broker dead-lettered it into sb.parked.
    func forged() -> Message {
        let claim = Original(
            exchange: "sb.out", routingKey: "vendor-x", properties: Properties(userId: "esb-vendor", headers: ["x-sb-kind": .string("timer")]))
        var headers: [String: FieldValue] = [
            Contract.Header.original: claim.field, Contract.Header.reason: .string("forged"),
            Contract.Header.parkedAt: .string("2026-12-01T10:00:00.000Z"),
        ]
        headers["x-death"] = .array([.table([
            "queue": .string("sb.in.customer-a"), "reason": .string("expired"), "exchange": .string("sb.in"),
            "routing-keys": .array([.string("customer-a")]), "count": .int(1), "time": .timestamp(1_764_590_000),
        ])])
        return Message(body: Data(#"{"number":"INC1"}"#.utf8), properties: Properties(
            messageId: "forged-1", expiration: "1", userId: "esb-a", headers: headers))
    }

    @Test func aDeadLetteredMessageGoesBackOnlyToTheQueueItDiedInAsTheESBPublishedIt() throws {
        let m = forged()
        #expect(ParkedOrigin.of(m, switchboardUser: us) == .deadLettered(reason: "expired", queue: "sb.in.customer-a", exchange: "sb.in", routingKey: "customer-a"))
        let out = try ReplayHandler.replay(m, switchboardUser: us)
        #expect(out.exchange == "" && out.routingKey == "sb.in.customer-a")
        #expect(out.message.properties.userId == nil && out.message.properties.expiration == nil)
        // What intake will check: the ESB's own publish (its user_id, which the broker checked), not the claim.
        let kept = try #require(Original(out.message.properties.headers[Contract.Header.original]))
        #expect(kept.exchange == "sb.in" && kept.routingKey == "customer-a" && kept.properties.userId == "esb-a")
        #expect(kept.properties.headers["x-death"] == nil)
        let shown = ParkedMessage(m, switchboardUser: us)
        #expect(shown.reason == "dead-lettered by the broker: expired, from queue sb.in.customer-a")
        #expect(shown.stage == "broker" && shown.endpoint == "customer-a" && shown.original?.routingKey == "customer-a")
    }

    /// What the store keeps of a parked message (its properties in the wire form, every header typed as it
    /// came) reads back as the same message, shown and replayed the same way.
    @Test func aStoredRowIsTheParkedMessage() throws {
        var m = forged()
        m.properties.headers["mixed"] = .table([
            "b": .bytes(Data([0, 255])), "d": .decimal(scale: 2, value: 150), "f": .float(1.5), "x": .double(-2.25), "n": .int(-1 << 40),
            "t": .timestamp(1_764_590_000), "v": .void, "a": .array([.bool(true), .bool(false), .string("ü")]),
        ])
        m.properties.priority = 7
        m.properties.deliveryModeSet = false  // (then `persistent` says nothing: false, as read back)
        m.properties.persistent = false
        let row = ParkedMessage.row(m, config: try config(), switchboardUser: us)
        #expect(row.origin == "broker" && row.endpoint == "customer-a" && row.ticket == "INC1" && row.messageId == "forged-1")
        let back = ParkedMessage(row: row, switchboardUser: us)
        #expect(back.message == m)
        #expect(back.id == ParkedMessage(m, switchboardUser: us).id && back.reason == ParkedMessage(m, switchboardUser: us).reason)
        #expect(try ReplayHandler.replay(try #require(back.message), switchboardUser: us).routingKey == "sb.in.customer-a")
        // An excerpt is for reading, never for a replay.
        var excerpt = row
        excerpt.body = excerpt.body.prefix(3)
        #expect(ParkedMessage(row: excerpt, switchboardUser: us).message == nil)
        #expect(FieldValue.decimal(scale: 2, value: 150).json == .object(["$decimal": .string("1.50")]))
        #expect(FieldValue.decimal(scale: 3, value: 5).json == .object(["$decimal": .string("0.005")]))
    }

    @Test func ourOwnParkingIsSignedAndReplayedWhereItsOriginalSays() throws {
        let original = Original(exchange: "sb.in", routingKey: "vendor-x", properties: Properties(messageId: "m1", userId: "esb-x"))
        let parked = Parking.park(body: Data("{".utf8), original: original, code: "invalid_json", reason: "bad", stage: "intake", endpoint: "vendor-x")
        #expect(parked.signed)
        let published = parked.message(as: us)
        #expect(published.properties.userId == us && ParkedOrigin.of(published, switchboardUser: us) == .switchboard)
        let out = try ReplayHandler.replay(published, switchboardUser: us)
        #expect(out.routingKey == "sb.in.vendor-x")
        // The same message published into sb.parked by anyone else (another user_id) is not ours.
        var other = published
        other.properties.userId = "esb-x"
        #expect(throws: ReplayHandler.Refused.self) { try ReplayHandler.replay(other, switchboardUser: us) }
        #expect(ParkedMessage(other, switchboardUser: us).reason.contains("not parked by Switchboard"))
    }

    @Test func onlyOurDataQueuesTakeADeadLetteredMessageBack() throws {
        func died(in queue: String, exchange: String) -> Message {
            Message(body: Data("{}".utf8), properties: Properties(messageId: "x", appId: "switchboard", headers: [
                "x-death": .array([.table(["queue": .string(queue), "reason": .string("delivery_limit"), "exchange": .string(exchange),
                                           "routing-keys": .array([.string("3")])])]),
                Contract.Header.original: Original(exchange: "sb.out", routingKey: "vendor-x", properties: Properties()).field,
            ]))
        }
        // Our work message, past the delivery limit: back to its partition, as it was (less the broker's headers).
        let work = try ReplayHandler.replay(died(in: "sb.work.3", exchange: "sb.work"), switchboardUser: us)
        #expect(work.exchange == "" && work.routingKey == "sb.work.3" && work.message.properties.headers["x-death"] == nil)
        // It may have been applied before it died (its outbound messages stored, not confirmed): marked
        // redelivered, the worker publishes what it stored instead of taking it for an ESB's resend.
        #expect(work.message.properties.headers[Contract.Header.redelivered] == .bool(true))
        let out = try ReplayHandler.replay(died(in: "sb.out.vendor-x", exchange: "sb.out"), switchboardUser: us)
        #expect(out.routingKey == "sb.out.vendor-x" && out.message.properties.headers[Contract.Header.redelivered] == nil)
        #expect(throws: ReplayHandler.Refused.self) { try ReplayHandler.replay(died(in: "esb.private", exchange: ""), switchboardUser: us) }
        #expect(throws: ReplayHandler.Refused.self) { try ReplayHandler.replay(died(in: "sb.in.customer-a", exchange: "amq.direct"), switchboardUser: us) }
    }
}
