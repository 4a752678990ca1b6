import Foundation
import Rules

/// What an erasure removed from one conversation (a data-protection request).
package struct Erasure: Sendable, Equatable {
    /// Timeline entries whose bodies and contents were blanked.
    package var timelineEntries = 0
    package var attributes = 0
    /// Outbound messages whose bodies were blanked.
    package var outboundBodies = 0
    package var parked = 0

    package init() {}

    /// What an entry keeps once erased: when, what kind, who, which message and rule, and its detail only
    /// where that says nothing of the content (a rule matched, a counter moved, the type and target of a
    /// message sent); the rest reads "(erased)". Never the body.
    package static func redact(_ e: TimelineEntry) -> TimelineEntry {
        var out = e
        out.body = nil
        switch e.kind {
        case .ruleMatched, .counter, .delayScheduled, .retry: break
        // Older releases wrote an excerpt of the body after a colon; today's detail is type, target and delay.
        case .sent: if let colon = e.detail.firstIndex(of: ":") { out.detail = String(e.detail[..<colon]) + ": (erased)" }
        case .attribute: out.detail = String(e.detail.prefix { $0 != ":" }) + ": (erased)"
        default: out.detail = "(erased)"
        }
        return out
    }
}

package enum AdminStoreRecord {
    /// The record an erasure leaves: on the conversation's audit, with counts and no content.
    package static func erasure(_ e: Erasure, conversationId: String, who: String, reason: String) -> AuditRecord {
        AuditRecord(
            at: Date(), who: who, action: "erase", reason: reason, conversationId: conversationId, endpoint: nil, messageId: nil,
            parkedId: "",
            detail: "erased \(e.timelineEntries) timeline entr(ies), \(e.attributes) attribute(s), \(e.outboundBodies) outbound bod(ies), "
                + "\(e.parked) parked message(s)")
    }
}
