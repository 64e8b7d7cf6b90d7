package main

import (
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	for in, want := range map[string]int{
		"":                       0,
		"one":                    1,
		"the quick  brown\tfox":  4,
		"\n lines\nand words \n": 3,
	} {
		got, err := count(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("count(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
