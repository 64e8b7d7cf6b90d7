// Package suggest finds the word someone probably meant: the "did you
// mean" of error messages about unknown keys and names.
package suggest

import (
	"fmt"
	"strings"
)

// Closest returns the candidate closest to word, ignoring case, when it is
// close enough to be a likely typo (a third of word's length in edits, at
// most 3, and fewer than word has letters), else "".
func Closest(word string, candidates []string) string {
	best, limit := "", min(len(word)/3+1, len(word)-1, 3)
	lower := strings.ToLower(word)
	for _, c := range candidates {
		if d := editDistance(lower, strings.ToLower(c)); d <= limit && (best == "" || d < limit) {
			best, limit = c, d
		}
	}
	return best
}

// DidYouMean returns ` (did you mean "x"?)` for the Closest candidate x,
// or "" when there is none: a suffix for an error message.
func DidYouMean(word string, candidates []string) string {
	if s := Closest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, counting an
// adjacent transposition as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
