import Foundation
import Synchronization

/// I-Regexp (RFC 9485), the regular expression dialect of JSONPath's match() and search(), run on ICU
/// through NSRegularExpression. The translation keeps I-Regexp meaning where ICU differs: '.' does not
/// match line breaks, '^' and '$' anchor at the very start and end (as the compliance suite expects), and set syntax ICU would read ('[' '&&') is escaped.
public enum IRegexp {
    private static let cache = Mutex<[String: NSRegularExpression?]>([:])

    /// True when `pattern` is a valid I-Regexp and matches `text` (all of it when `whole`).
    public static func matches(_ pattern: String, in text: String, whole: Bool, budget: RegexBudget = RegexBudget()) -> Bool {
        let key = (whole ? "M" : "S") + pattern
        let regex: NSRegularExpression? = cache.withLock { cache in
            if let cached = cache[key] { return cached }
            let compiled = translate(pattern).flatMap { p in
                try? NSRegularExpression(pattern: whole ? "\\A(?:\(p))\\z" : p, options: [])
            }
            if cache.count > 10_000 { cache.removeAll() }
            cache[key] = compiled
            return compiled
        }
        guard let regex else { return false }
        return budget.firstMatch(regex, in: text)
    }

    /// The ICU pattern for an I-Regexp, or nil when the pattern is not valid I-Regexp.
    static func translate(_ pattern: String) -> String? {
        let s = Array(pattern.unicodeScalars)
        var out = ""
        var i = 0
        var depth = 0
        var lastWasAtom = false
        func isSingleEscape(_ c: Unicode.Scalar) -> Bool {
            "()*+-.?[\\]^{|}nrt".unicodeScalars.contains(c)
        }
        // \p{..} or \P{..}: copy verbatim after checking the braces.
        func categoryEscape(_ at: Int) -> (String, Int)? {
            guard at + 1 < s.count, s[at] == "\\", s[at + 1] == "p" || s[at + 1] == "P",
                at + 2 < s.count, s[at + 2] == "{"
            else { return nil }
            var j = at + 3
            var name = ""
            while j < s.count, s[j] != "}" {
                guard (s[j] >= "a" && s[j] <= "z") || (s[j] >= "A" && s[j] <= "Z") || (s[j] >= "0" && s[j] <= "9") || s[j] == "-"
                else { return nil }
                name.unicodeScalars.append(s[j])
                j += 1
            }
            guard j < s.count, !name.isEmpty else { return nil }
            return ("\\\(Character(s[at + 1])){\(name)}", j + 1)
        }
        // An escape at `at`, in or out of a class: a category or a single-character escape.
        func escape(_ at: Int) -> (String, Int)? {
            if let category = categoryEscape(at) { return category }
            guard at + 1 < s.count, isSingleEscape(s[at + 1]) else { return nil }
            return ("\\" + String(Character(s[at + 1])), at + 2)
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case "\\":
                guard let (esc, next) = escape(i) else { return nil }
                out += esc
                i = next
                lastWasAtom = true
            case ".":
                out += "[^\\n\\r]"
                i += 1
                lastWasAtom = true
            case "^":
                out += "\\A"
                i += 1
                lastWasAtom = true
            case "$":
                out += "\\z"
                i += 1
                lastWasAtom = true
            case "(":
                if i + 1 < s.count, s[i + 1] == "?" { return nil }
                depth += 1
                out += "("
                i += 1
                lastWasAtom = false
            case ")":
                guard depth > 0 else { return nil }
                depth -= 1
                out += ")"
                i += 1
                lastWasAtom = true
            case "|":
                out += "|"
                i += 1
                lastWasAtom = false
            case "*", "+", "?":
                guard lastWasAtom else { return nil }
                out += String(Character(c))
                i += 1
                lastWasAtom = false
            case "{":
                guard lastWasAtom else { return nil }
                var j = i + 1
                var body = ""
                while j < s.count, s[j] != "}" {
                    guard (s[j] >= "0" && s[j] <= "9") || s[j] == "," else { return nil }
                    body.unicodeScalars.append(s[j])
                    j += 1
                }
                guard j < s.count else { return nil }
                let parts = body.split(separator: ",", omittingEmptySubsequences: false)
                guard !parts.isEmpty, parts.count <= 2, !parts[0].isEmpty else { return nil }
                out += "{\(body)}"
                i = j + 1
                lastWasAtom = false
            case "}", "]":
                return nil
            case "[":
                var j = i + 1
                var set = "["
                if j < s.count, s[j] == "^" {
                    set += "^"
                    j += 1
                }
                while j < s.count, s[j] != "]" {
                    let d = s[j]
                    if d == "\\" {
                        guard let (esc, next) = escape(j) else { return nil }
                        set += esc
                        j = next
                    } else if d == "[" {
                        return nil
                    } else if d == "-" {
                        set += "-"
                        j += 1
                    } else if d.isASCII, !(d.properties.isAlphabetic || (d >= "0" && d <= "9")), d != " " {
                        set += "\\" + String(Character(d))
                        j += 1
                    } else {
                        set.unicodeScalars.append(d)
                        j += 1
                    }
                }
                guard j < s.count else { return nil }
                out += set + "]"
                i = j + 1
                lastWasAtom = true
            default:
                out.unicodeScalars.append(c)
                i += 1
                lastWasAtom = true
            }
        }
        guard depth == 0 else { return nil }
        return out
    }
}
