import Foundation
import JSONPath
import Rules

/// The store RPC's compact binary form (content type `application/x-sb-wire`): what a worker and the store
/// role send each other for every batch, written and read field by field instead of through Foundation's
/// JSONEncoder/JSONDecoder (which build a tree of every value, base64 every body, and cost more CPU than
/// the store's own work). Integers are LEB128 varints (zigzag for signed), strings and bytes a varint
/// length and their bytes, dates a Double of seconds since 1970 (bit pattern, little-endian), optionals
/// a 0/1 byte, collections a count and their elements, attribute values their JSON text (numbers exact).
/// The first byte of a body is the format's version: 1, the first; 2, a commit names the outbound
/// messages it answers (`Commit.answered`) and timeline entries carry their typed fields (type, delay,
/// the message answered, the configuration that decided, the version met). A release reads every version up to its own and writes the
/// oldest one that holds what it sends (`WireCodable.wireVersion`): only commits are written as 2, so the
/// workers of the previous release still read the answers of a store already upgraded (the store is
/// upgraded first, docs/operations.md), and parked rows written as 1 stay readable.
package enum StoreWire {
    package static let contentType = "application/x-sb-wire"
    package static let newest: UInt8 = 2

    package static func encode<T: WireCodable>(_ value: T) -> Data {
        var w = WireWriter(version: T.wireVersion)
        w.bytes.append(w.version)
        value.write(to: &w)
        return Data(w.bytes)
    }

    package static func decode<T: WireCodable>(_ type: T.Type, _ data: Data) throws -> T {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> T in
            var r = WireReader(raw)
            let v = try r.byte()
            guard (1...newest).contains(v) else { throw WireError("store message format \(v), this release reads 1 to \(newest)") }
            r.version = v
            let value = try T(from: &r)
            guard r.atEnd else { throw WireError("\(r.remaining) byte(s) after the value") }
            return value
        }
    }
}

/// Attribute values as their JSON text: numbers cross exactly as written (`1.50`, integers of any length).
extension JSON: WireCodable {
    package func write(to w: inout WireWriter) { w.string(serializedString) }
    package init(from r: inout WireReader) throws {
        let text = try r.string()
        do { self = try JSON.parse(text) } catch { throw WireError("an attribute that is not JSON: \(error)") }
    }
}

extension TicketRef: WireCodable {
    package func write(to w: inout WireWriter) {
        w.string(endpoint)
        w.string(ticketId)
    }
    package init(from r: inout WireReader) throws { self.init(try r.string(), try r.string()) }
}

extension InboundKey: WireCodable {
    package func write(to w: inout WireWriter) {
        w.string(endpoint)
        w.string(messageId)
    }
    package init(from r: inout WireReader) throws { self.init(try r.string(), try r.string()) }
}

extension StoredOutbound: WireCodable {
    package func write(to w: inout WireWriter) {
        w.string(messageId)
        w.string(conversationId)
        inbound.write(to: &w)
        w.string(target)
        w.string(type)
        w.string(rule)
        w.data(body)
        w.int(delayMs)
        w.bytes.append(kind == .timer ? 1 : 0)
    }

    package init(from r: inout WireReader) throws {
        let (messageId, conversationId, inbound) = (try r.string(), try r.string(), try InboundKey(from: &r))
        let (target, type, rule, body, delayMs) = (try r.string(), try r.string(), try r.string(), try r.data(), try r.int())
        let kind: Kind = try r.byte() == 1 ? .timer : .message
        self.init(
            messageId: messageId, conversationId: conversationId, inbound: inbound, target: target, type: type, rule: rule,
            body: body, delayMs: delayMs, kind: kind)
    }
}

extension TimelineEntry: WireCodable {
    package static var wireVersion: UInt8 { 2 }

    package func write(to w: inout WireWriter) {
        w.string(conversationId)
        at.write(to: &w)
        w.string(kind.rawValue)
        endpoint.write(to: &w)
        who.write(to: &w)
        messageId.write(to: &w)
        rule.write(to: &w)
        w.string(detail)
        body.write(to: &w)
        sinceIntakeMs.write(to: &w)
        if w.version >= 2 {
            messageType.write(to: &w)
            delayMs.write(to: &w)
            answers.write(to: &w)
            configuration.write(to: &w)
            met.write(to: &w)
        }
    }

    package init(from r: inout WireReader) throws {
        let (conversationId, at, kind) = (try r.string(), try Date(from: &r), try r.string())
        let (endpoint, who, messageId, rule) = (try String?(from: &r), try String?(from: &r), try String?(from: &r), try String?(from: &r))
        let (detail, body) = (try r.string(), try String?(from: &r))
        self.init(
            conversationId: conversationId, at: at, kind: TimelineKind(rawValue: kind), endpoint: endpoint, who: who, messageId: messageId,
            rule: rule, detail: detail, body: body)
        sinceIntakeMs = try Int?(from: &r)
        if r.version >= 2 {
            (messageType, delayMs, answers) = (try String?(from: &r), try Int?(from: &r), try String?(from: &r))
            (configuration, met) = (try String?(from: &r), try Int?(from: &r))
        }
    }
}

extension ConversationSnapshot: WireCodable {
    package func write(to w: inout WireWriter) {
        w.string(id)
        w.int(version)
        references.write(to: &w)
        attributes.write(to: &w)
        counters.write(to: &w)
    }

    package init(from r: inout WireReader) throws {
        self.init(
            id: try r.string(), version: try r.int(), references: try [String: String](from: &r),
            attributes: try [String: JSON](from: &r), counters: try [String: Int](from: &r))
    }
}

extension Commit: WireCodable {
    package static var wireVersion: UInt8 { 2 }

    package func write(to w: inout WireWriter) {
        inbound.write(to: &w)
        w.string(conversationId)
        w.int(expectedVersion)
        newReferences.write(to: &w)
        timeline.write(to: &w)
        outbox.write(to: &w)
        // nil (removed) and JSON null stay apart.
        attributes.write(to: &w)
        counters.write(to: &w)
        failedOutbound.write(to: &w)
        w.string(digest)
        at.write(to: &w)
        w.string(attempt)
        if w.version >= 2 { answered.write(to: &w) }
    }

    package init(from r: inout WireReader) throws {
        let (inbound, conversationId, expectedVersion) = (try InboundKey(from: &r), try r.string(), try r.int())
        let (references, timeline, outbox) = (try [TicketRef](from: &r), try [TimelineEntry](from: &r), try [StoredOutbound](from: &r))
        let (attributes, counters, failed) = (try [String: JSON?](from: &r), try [String: Int](from: &r), try [String: String](from: &r))
        self.init(
            inbound: inbound, conversationId: conversationId, expectedVersion: expectedVersion, newReferences: references,
            timeline: timeline, outbox: outbox, attributes: attributes, counters: counters, failedOutbound: failed,
            digest: try r.string(), at: try Date(from: &r), attempt: try r.string())
        if r.version >= 2 { answered = try [String](from: &r) }
    }
}

extension CommitOutcome: WireCodable {
    package func write(to w: inout WireWriter) {
        switch self {
        case .committed(let version):
            w.bytes.append(0)
            w.int(version)
        case .duplicate(let conversationId, let outbox):
            w.bytes.append(1)
            w.string(conversationId)
            outbox.write(to: &w)
        case .stale:
            w.bytes.append(2)
        case .conflict(let conversationId, let digest, let at):
            w.bytes.append(3)
            w.string(conversationId)
            w.string(digest)
            at.write(to: &w)
        }
    }

    package init(from r: inout WireReader) throws {
        switch try r.byte() {
        case 0: self = .committed(version: try r.int())
        case 1: self = .duplicate(conversationId: try r.string(), outbox: try [StoredOutbound](from: &r))
        case 2: self = .stale
        case 3: self = .conflict(conversationId: try r.string(), digest: try r.string(), at: try Date(from: &r))
        case let b: throw WireError("commit outcome \(b)")
        }
    }
}

extension StoreError: WireCodable {
    package func write(to w: inout WireWriter) {
        w.bytes.append(code == .refused ? 1 : 0)
        w.string(message)
    }

    package init(from r: inout WireReader) throws {
        let code: Code = try r.byte() == 1 ? .refused : .unavailable
        self.init(try r.string(), code: code)
    }
}
