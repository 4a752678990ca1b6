import Foundation
import JSONPath

/// What the worker found for one message before deciding it: the message, the conversation as the
/// batch has left it (a new, empty one for a ticket's first message), and for an ack the message it answers.
package struct Situation: Sendable {
    package var endpoint: String
    package var messageId: String
    /// The partition route of the ticket this message belongs to; what it causes inherits it.
    package var route: UInt64
    package var event: InboundEvent
    package var conversation: ConversationSnapshot
    /// For an ack: the outbound message it answers.
    package var acked: StoredOutbound?
    package var now: Date
    /// References this message would link that another conversation owns already (the worker looks them
    /// up when a commit went stale): not linked, noted on the timeline.
    package var takenElsewhere: [TicketRef: String] = [:]
    /// The inbound body exactly as it arrived, for the timeline (else the parsed body is written out again).
    package var inboundText: String?
    /// Keep inbound bodies on the timeline (`settings.timeline_bodies`).
    package var keepBodies = true
    /// When intake received the message (from its work message), if known.
    package var receivedAt: Date?

    package init(
        endpoint: String, messageId: String, route: UInt64, event: InboundEvent, conversation: ConversationSnapshot,
        acked: StoredOutbound? = nil, now: Date
    ) {
        self.endpoint = endpoint
        self.messageId = messageId
        self.route = route
        self.event = event
        self.conversation = conversation
        self.acked = acked
        self.now = now
    }
}

/// Everything one message changes: what the store commits with it.
package struct MessageDecision: Sendable {
    package var newReferences: [TicketRef] = []
    package var timeline: [TimelineEntry] = []
    package var outbox: [StoredOutbound] = []
    package var attributes: [String: JSON?] = [:]
    package var counters: [String: Int] = [:]
    package var failedOutbound: [String: String] = [:]
    /// The rules that matched (for the metrics of rule matches).
    package var matchedRules: [String] = []
    /// The conversation after the message (version + 1), for the next message of the batch.
    package var next: ConversationSnapshot
}

/// A message that cannot be decided because of what it says: it is parked with this reason.
package struct Unprocessable: Error, CustomStringConvertible, Sendable {
    package var description: String
    /// The kind of reason the message is parked with (the metric's `reason` label).
    package var code = "unprocessable"
    package init(_ description: String, code: String = "unprocessable") {
        self.description = description
        self.code = code
    }
}

extension Engine {
    /// The message's own ticket, then the other endpoints' tickets it names, in a stable order.
    package static func ticketRefs(_ event: InboundEvent) -> [TicketRef] {
        [TicketRef(event.endpoint, event.ticketId ?? "")]
            + event.references.sorted { $0.key < $1.key }.map { TicketRef($0.key, $0.value) }
    }

    /// The references the message would link: its tickets (or, for an ok ack, the key of the ticket the
    /// answered message created), those the conversation has not got yet, one per endpoint.
    package func candidates(_ s: Situation) -> [TicketRef] {
        var refs: [TicketRef] = []
        if s.event.type == EventType.ack {
            if let acked = s.acked, Self.ackStatus(s.event.body).ok,
                let keyPath = config.endpoints[s.endpoint]?.ackKey ?? (try? JSONPath("$.key")),
                let key = keyPath.first(s.event.body)?.scalarText, !key.isEmpty
            {
                refs = [TicketRef(acked.target, key)]
            }
        } else if s.event.type != EventType.timer {
            refs = Self.ticketRefs(s.event)
        }
        var out: [TicketRef] = []
        for ref in refs where s.conversation.references[ref.endpoint] == nil && !out.contains(where: { $0.endpoint == ref.endpoint }) {
            out.append(ref)
        }
        return out
    }

    /// The whole decision for one message: what it links, the timeline (received, acked, linked, rules,
    /// attributes, counters, sent), the outbound messages and timers with their stable ids, and the changes.
    package func decide(_ s: Situation) throws(Unprocessable) -> MessageDecision {
        let c = s.conversation
        let event = s.event
        func entry(
            _ kind: TimelineKind, endpoint: String?, who: String? = nil, messageId: String? = nil, rule: String? = nil, body: String? = nil,
            _ detail: String
        ) -> TimelineEntry {
            TimelineEntry(
                conversationId: c.id, at: s.now, kind: kind, endpoint: endpoint, who: who, messageId: messageId ?? s.messageId, rule: rule,
                detail: detail, body: body)
        }
        var d = MessageDecision(next: c)
        var evaluated = event
        evaluated.now = s.now
        switch event.type {
        case EventType.timer:
            d.timeline.append(entry(.timerFired, endpoint: nil, "timer '\(event.timer ?? "?")' fired"))
        case EventType.ack:
            guard let acked = s.acked else { throw Unprocessable("ack without the message it answers") }
            // Only the endpoint a message went to may answer it: another endpoint's ack would link a key of
            // its choosing to that endpoint's ticket, or set off the target's retry rules.
            guard acked.kind == .message, acked.target == s.endpoint else {
                let sentTo = acked.kind == .timer ? "a timer of Switchboard's" : "endpoint '\(acked.target)'"
                throw Unprocessable(
                    "ack from endpoint '\(s.endpoint)' for message '\(acked.messageId)', which was sent to \(sentTo): "
                        + "only the endpoint a message was sent to may acknowledge it")
            }
            evaluated.ack = AckedMessage(messageId: acked.messageId, type: acked.type, rule: acked.rule, target: acked.target, body: acked.body)
            let (ok, status) = Self.ackStatus(event.body)
            var ack = entry(
                Self.isWaiting(event.body) ? .waiting : ok ? .acked : .ackError, endpoint: s.endpoint, who: event.who, body: s.keepBodies ? s.inboundText ?? event.body.serializedString : nil,
                "\(status) ack of \(acked.type) \(acked.messageId) to \(acked.target)" + (event.body["message"]?.scalarText.map { ": \($0)" } ?? ""))
            ack.answers = acked.messageId
            ack.messageType = acked.type
            d.timeline.append(ack)
        default:
            var received = entry(
                .received, endpoint: s.endpoint, who: event.who, body: s.keepBodies ? s.inboundText ?? event.body.serializedString : nil,
                "\(event.type) of \(Self.ticketRefs(event)[0])")
            received.messageType = event.type
            received.sinceIntakeMs = s.receivedAt.map { max(0, Int((s.now.timeIntervalSince($0) * 1000).rounded())) }
            d.timeline.append(received)
        }
        // The opening entry says what decided the message and what it met (see `TimelineEntry.met`).
        d.timeline[0].configuration = config.source.contentHash.isEmpty ? nil : String(config.source.contentHash.prefix(12))
        d.timeline[0].met = c.version
        var view = c
        for ref in candidates(s) {
            if let owner = s.takenElsewhere[ref], owner != c.id {
                d.timeline.append(entry(.warning, endpoint: s.endpoint, "reference \(ref) already belongs to conversation \(owner); not linked"))
                continue
            }
            d.newReferences.append(ref)
            view.references[ref.endpoint] = ref.ticketId
            // A new conversation starts with its source ticket; every other reference is a link.
            if c.version > 0 || ref.endpoint != s.endpoint || event.type == EventType.ack {
                d.timeline.append(entry(.linked, endpoint: ref.endpoint, "linked \(ref)"))
            }
        }
        let decision = evaluate(evaluated, conversation: view)
        if let why = decision.tooSlow { throw Unprocessable("\(why); the message is parked so that its partition goes on") }
        // Our own write coming back before our ack linked its ticket (a tool's webhook for a create can beat
        // the create's answer, and always does when that answer was lost): it links nothing, so the ack (or
        // the lookup's adoption) links the ticket to the conversation that made it; the echo stays on a
        // conversation of its own.
        if c.version == 0, decision.notes.contains(where: { $0.kind == .echo }) {
            d.newReferences = []
            d.timeline.removeAll { $0.kind == .linked }
            view.references = [:]
        }
        for note in decision.notes {
            d.timeline.append(entry(note.kind, endpoint: s.endpoint, rule: note.rule, body: note.body, note.detail))
        }
        let inbound = InboundKey(s.endpoint, s.messageId)
        let inboundHash = MessageIds.inboundHash(endpoint: s.endpoint, messageId: s.messageId, version: c.version)
        for (n, draft) in decision.outbound.enumerated() {
            let id = MessageIds.outbound(conversation: c.id, route: s.route, inbound: inboundHash, index: n)
            let body = draft.body.serialized()
            d.outbox.append(StoredOutbound(
                messageId: id, conversationId: c.id, inbound: inbound, target: draft.target, type: draft.type, rule: draft.rule,
                body: body, delayMs: draft.delayMs ?? 0))
            var sent = entry(
                .sent, endpoint: draft.target, messageId: id, rule: draft.rule,
                TimelineEntry.sentDetail(type: draft.type, target: draft.target, delayMs: draft.delayMs))
            sent.messageType = draft.type
            sent.delayMs = draft.delayMs
            d.timeline.append(sent)
        }
        for (n, timer) in decision.timers.enumerated() {
            let id = MessageIds.outbound(conversation: c.id, route: s.route, inbound: inboundHash, index: n, timer: true)
            var fields = timer.payload
            fields["timer"] = .string(timer.name)
            fields["conversation"] = .string(c.id)
            let body = JSON.object(fields)
            d.outbox.append(StoredOutbound(
                messageId: id, conversationId: c.id, inbound: inbound, target: MessageIds.timerEndpoint, type: timer.name,
                rule: timer.rule, body: body.serialized(), delayMs: timer.afterMs, kind: .timer))
        }
        d.attributes = decision.attributeChanges
        d.counters = decision.counterChanges
        // A comment the endpoint made for us (its ack names it, `comment_id`): kept, so that the comment's
        // webhook coming back is known as our own write (`Engine.isOwnComment`).
        if event.type == EventType.ack, Self.ackStatus(event.body).ok, let id = event.body["comment_id"]?.scalarText, !id.isEmpty {
            let name = Reserved.comments(s.endpoint)
            var ids: [JSON] = []
            if case .array(let kept)? = c.attributes[name] { ids = kept }
            if !ids.contains(.string(id)) {
                ids.append(.string(id))
                d.attributes[name] = .some(.array(Array(ids.suffix(Reserved.keptComments))))
            }
        }
        // The loop breaker's window (not on the timeline: the engine's bookkeeping, not a rule's).
        if let loop = config.settings.loopBreaker, event.type != EventType.ack, event.type != EventType.timer {
            let now = Int(s.now.timeIntervalSince1970)
            let since = c.counters[LoopBreaker.sinceCounter] ?? 0
            let fresh = now - since >= loop.withinSeconds || now < since
            let count = fresh ? 1 : (c.counters[LoopBreaker.countCounter] ?? 0) + 1
            if count > loop.messages {
                throw Unprocessable(
                    "loop: message \(count) of conversation \(c.id) within \(Self.format(ms: loop.withinSeconds * 1000)) "
                        + "(settings.loop_breaker allows \(loop.messages)): parked, as every further one until the window passes; "
                        + "find the echo (endpoints.<name>.echo) and replay them", code: "loop")
            }
            if fresh { d.counters[LoopBreaker.sinceCounter] = now }
            d.counters[LoopBreaker.countCounter] = count
        }
        d.failedOutbound = decision.failedOutbound
        d.matchedRules = decision.matchedRules
        d.next = view
        d.next.version = c.version + 1
        for (name, value) in d.attributes { d.next.attributes[name] = value }
        for (name, value) in d.counters { d.next.counters[name] = value }
        return d
    }

    /// The start of a body for the timeline: enough to recognise it, never a whole payload.
    package static func excerpt(_ body: Data) -> String {
        body.count <= 200 ? String(decoding: body, as: UTF8.self) : String(decoding: body.prefix(200), as: UTF8.self) + "..."
    }
}
