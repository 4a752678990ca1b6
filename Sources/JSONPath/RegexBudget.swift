import Foundation

/// How long regular expressions may work on one message. ICU backtracks: a pattern like `(a+)+$` on a
/// hostile 40-character text runs for hours, and the partition behind it would stop. Matching reports
/// its progress every few thousand steps; once the matches of one budget have taken longer than `limit`
/// milliseconds in all, the current one gives up (as "no match") and the budget says so, so the caller
/// can park the message instead of trusting the decision.
public final class RegexBudget: @unchecked Sendable {
    /// Milliseconds of matching allowed, in all, for what this budget covers (one message).
    public let limit: Int
    /// Set when a match gave up: which pattern, on how long a text.
    public private(set) var exceeded: String?
    private var spent: TimeInterval = 0

    public static let defaultLimit = 1_000

    public init(limit: Int = RegexBudget.defaultLimit) {
        self.limit = limit
    }

    /// Whether `regex` finds a match in `text`; false (and `exceeded` set) when the budget ran out.
    public func firstMatch(_ regex: NSRegularExpression, in text: String) -> Bool {
        if exceeded != nil { return false }
        var found = false
        var gaveUp = false
        let allowed = Double(limit) / 1000 - spent
        let start = Date()
        regex.enumerateMatches(in: text, options: [.reportProgress], range: NSRange(text.startIndex..., in: text)) {
            match, _, stop in
            if match != nil {
                found = true
                stop.pointee = true
            } else if Date().timeIntervalSince(start) > allowed {
                gaveUp = true
                stop.pointee = true
            }
        }
        spent += Date().timeIntervalSince(start)
        if gaveUp, !found {
            exceeded = "the regular expression \(regex.pattern.debugDescription) gave up on a text of \(text.unicodeScalars.count) characters (more than \(limit) ms of matching for one message)"
        }
        return found
    }
}
