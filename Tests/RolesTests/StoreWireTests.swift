import AMQP
import Foundation
import JSONPath
import Logging
import Testing

@testable import Rules
@testable import Store
@testable import Roles
@testable import StoreRole

/// The store RPC's binary form: every value crosses unchanged, corrupt input is an error (never a crash or
/// a huge allocation), and the store answers the JSON form of older workers in kind.
@Suite struct StoreWireTests {
    func roundTrip<T: WireCodable>(_ value: T) throws -> T {
        try StoreWire.decode(T.self, StoreWire.encode(value))
    }

    let outbound = StoredOutbound(
        messageId: "sb-c1-r-h-1", conversationId: "c1", inbound: InboundKey("customer-a", "m-1"), target: "vendor-x",
        type: "update", rule: "update-at-vendor", body: Data([0, 255, 0x7B, 0x22]), delayMs: 60_000, kind: .timer)

    @Test func aCommitCrossesUnchanged() throws {
        var entry = TimelineEntry(
            conversationId: "c1", at: Date(timeIntervalSince1970: 1_764_600_000.123), kind: .received, endpoint: "customer-a",
            who: "älice ✓", messageId: nil, rule: "r", detail: "update of customer-a/INC1", body: #"{"a":1}"#)
        entry.sinceIntakeMs = 42
        (entry.messageType, entry.delayMs, entry.answers) = ("update", 60_000, "sb-c1-0")
        (entry.configuration, entry.met) = ("0123456789ab", 3)
        let commit = Commit(
            inbound: InboundKey("customer-a", "m-1"), conversationId: "c1", expectedVersion: 7,
            newReferences: [TicketRef("vendor-x", "VX-1")], timeline: [entry], outbox: [outbound],
            attributes: ["price": try JSON.parse("1.50"), "big": try JSON.parse("123456789012345678901234567890"),
                         "null": .some(.null), "removed": .none],
            counters: ["n": -3, "m": Int.max], failedOutbound: ["sb-x": "LOCKED"], answered: ["sb-y"], digest: "d1",
            at: Date(timeIntervalSince1970: 1_764_600_000.5), attempt: "a-1")
        let back = try roundTrip(StoreRPC.Commits(commits: [commit, commit])).commits
        #expect(back.count == 2)
        let c = back[0]
        #expect(c.inbound == commit.inbound && c.conversationId == "c1" && c.expectedVersion == 7)
        #expect(c.newReferences == commit.newReferences && c.timeline == commit.timeline && c.outbox == [outbound])
        #expect(c.timeline[0].sinceIntakeMs == 42 && c.timeline[0].messageId == nil)
        #expect(c.attributes["price"]??.serializedString == "1.50")
        #expect(c.attributes["big"]??.serializedString == "123456789012345678901234567890")
        // A JSON null and a removal stay apart.
        #expect(c.attributes["null"] == .some(.some(.null)))
        #expect(c.attributes.keys.contains("removed") && c.attributes["removed"] == .some(.none))
        #expect(c.counters == commit.counters && c.failedOutbound == commit.failedOutbound)
        #expect(c.digest == "d1" && c.at == commit.at && c.attempt == "a-1" && c.answered == ["sb-y"])
    }

    /// Format 1 (before `Commit.answered`) is still read: a worker of the previous release keeps working
    /// against an upgraded store; answers, which did not change, are still written as 1 for it.
    @Test func theFirstFormatIsStillRead() throws {
        let commit = Commit(inbound: InboundKey("customer-a", "m-1"), conversationId: "c1", expectedVersion: 1,
                            answered: ["sb-y"], at: Date(timeIntervalSince1970: 5))
        var w = WireWriter(version: 1)
        w.bytes.append(1)
        StoreRPC.Commits(commits: [commit]).write(to: &w)
        let old = try StoreWire.decode(StoreRPC.Commits.self, Data(w.bytes)).commits
        #expect(old.count == 1 && old[0].conversationId == "c1" && old[0].answered.isEmpty)
        #expect(StoreWire.encode(StoreRPC.Commits(commits: [commit])).first == 2)
        #expect(StoreWire.encode(StoreRPC.Reply(value: [CommitOutcome.stale])).first == 1)
        #expect(throws: WireError.self) { try StoreWire.decode(StoreRPC.Commits.self, Data([3, 0])) }
    }

    @Test func answersCrossUnchanged() throws {
        let snapshot = ConversationSnapshot(
            id: "c1", version: 3, references: ["customer-a": "INC1", "vendor-x": "VX-1"],
            attributes: ["x": try JSON.parse(#"{"k":[1,2.50,"s"]}"#)], counters: ["n": 2])
        let found = try roundTrip(StoreRPC.Reply(value: [snapshot, nil] as [ConversationSnapshot?])).value
        #expect(found.count == 2 && found[1] == nil)
        #expect(found[0]?.id == "c1" && found[0]?.version == 3 && found[0]?.references == snapshot.references)
        #expect(found[0]?.attributes["x"]?.serializedString == #"{"k":[1,2.50,"s"]}"#)
        let outcomes: [CommitOutcome] = [
            .committed(version: 4), .duplicate(conversationId: "c1", outbox: [outbound]), .stale,
            .conflict(conversationId: "c2", digest: "d", at: Date(timeIntervalSince1970: 5)),
        ]
        #expect(try roundTrip(outcomes) == outcomes)
        let error = try roundTrip(StoreError("too big", code: .refused))
        #expect(error.code == .refused && error.message == "too big")
        #expect(try roundTrip(StoreRPC.Member(member: "intake/h-1", ttl: 4)).ttl == 4)
    }

    @Test func corruptInputIsAnError() throws {
        let good = StoreWire.encode(StoreRPC.Ids(ids: ["a", "b"]))
        #expect(throws: WireError.self) { try StoreWire.decode(StoreRPC.Ids.self, good.dropLast()) }
        #expect(throws: WireError.self) { try StoreWire.decode(StoreRPC.Ids.self, good + Data([0])) }
        #expect(throws: WireError.self) { try StoreWire.decode(StoreRPC.Ids.self, Data([9]) + good.dropFirst()) }
        // A count of 2^62 elements in a 12-byte message: refused before anything is allocated.
        #expect(throws: WireError.self) {
            try StoreWire.decode(StoreRPC.Ids.self, Data([1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]))
        }
        #expect(throws: WireError.self) { try StoreWire.decode(String.self, Data([1, 2, 0xC3, 0x28])) }  // not UTF-8
        #expect(throws: (any Error).self) { try StoreWire.decode(StoreRPC.Ids.self, Data(#"{"ids":["a"]}"#.utf8)) }
    }

    /// The store role answers each form in kind: the binary one of this release, the JSON one of older workers.
    @Test func theStoreAnswersBothForms() throws {
        let store = try temporaryStore()
        let server = StoreServer(store: store, exclusive: true, logger: Logger(label: "t"))
        let commit = Commit(
            inbound: InboundKey("customer-a", "m-1"), conversationId: "c1", expectedVersion: 0,
            newReferences: [TicketRef("customer-a", "INC1")], attributes: ["p": try JSON.parse("1.50")], at: Date())
        func request(_ op: StoreRPC.Op, _ body: Data, wire: Bool) throws -> Message {
            let props = Properties(
                contentType: wire ? StoreWire.contentType : "application/json", correlationId: "1", type: op.rawValue,
                replyTo: "amq.rabbitmq.reply-to.x")
            let d = Delivery(
                deliveryTag: 1, redelivered: false, exchange: "", routingKey: Contract.storeQueue, consumerTag: "t",
                message: Message(body: body, properties: props), generation: 1)
            let out = try server.handle([d])
            try #require(out.count == 1)
            return out[0].message
        }
        let committed = try request(.commit, StoreWire.encode(StoreRPC.Commits(commits: [commit])), wire: true)
        #expect(committed.properties.type == "ok" && committed.properties.contentType == StoreWire.contentType)
        #expect(try StoreWire.decode([CommitOutcome].self, committed.body) == [.committed(version: 1)])
        let legacy = try request(.find, try JSONEncoder().encode(StoreRPC.Refs(refs: [TicketRef("customer-a", "INC1")])), wire: false)
        #expect(legacy.properties.type == "ok" && legacy.properties.contentType == nil)
        let found = try JSONDecoder().decode(StoreRPC.Reply<ConversationSnapshot?>.self, from: legacy.body).value
        #expect(found?.id == "c1" && found?.attributes["p"]?.serializedString == "1.50")
        let broken = try request(.find, Data([1, 5]), wire: true)
        #expect(broken.properties.type == "error")
        #expect(try StoreWire.decode(StoreError.self, broken.body).message.contains("unreadable store message"))
    }
}
