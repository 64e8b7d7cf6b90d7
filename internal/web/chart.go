package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/hangar-ci/hangar/internal/analytics"
)

// The charts' geometry, in pixels.
const (
	chartW, chartH                 = 640, 220
	padLeft, padRight, padTop, pad = 56, 40, 12, 28
	legendRow                      = 18
	maxSeriesColors                = 8
)

// ChartSVG draws a chart as an inline SVG: lines, or stacked bars for a
// stacked chart, over time, with its axes and a legend. Buckets without
// data break a line. Everything is drawn on the server.
func ChartSVG(c analytics.Chart) template.HTML {
	var b strings.Builder
	legendH := legendRow * ((len(c.Series) + 2) / 3)
	h := chartH + legendH
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="`, chartW, h, chartW, h)
	escape(&b, c.Title)
	b.WriteString(`">`)
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-pad)
	top := chartTop(c)
	y := func(v float64) float64 { return float64(padTop) + plotH*(1-v/top) }
	n := len(c.Buckets)
	slot := plotW / float64(max(n, 1))
	x := func(i int) float64 { return float64(padLeft) + slot*(float64(i)+0.5) }

	// Axes and grid: four steps up the value axis.
	for k := 0; k <= 4; k++ {
		v := top * float64(k) / 4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, chartW-padRight, y(v), y(v))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, y(v)+4, formatValue(v, c.Unit))
	}
	every := max(1, (n+7)/8) // at most eight time labels
	for i, t := range c.Buckets {
		if i%every == 0 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(i), chartH-pad+16, formatBucket(t, c.Buckets))
		}
	}
	if len(c.Series) == 0 {
		fmt.Fprintf(&b, `<text class="nodata" x="%d" y="%d" text-anchor="middle">no data in this range</text>`, chartW/2, chartH/2)
	}
	if c.Stacked {
		base := make([]float64, n)
		barW := slot * 0.7
		for s, ser := range c.Series {
			for i, v := range ser.Values {
				if math.IsNaN(v) || v <= 0 {
					continue
				}
				fmt.Fprintf(&b, `<rect class="s%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>`, s%maxSeriesColors, x(i)-barW/2, y(base[i]+v), barW, y(base[i])-y(base[i]+v))
				escape(&b, fmt.Sprintf("%s, %s: %s", ser.Name, formatBucket(c.Buckets[i], c.Buckets), formatValue(v, c.Unit)))
				b.WriteString(`</title></rect>`)
				base[i] += v
			}
		}
	} else {
		for s, ser := range c.Series {
			var path strings.Builder
			pen := false
			for i, v := range ser.Values {
				if math.IsNaN(v) {
					pen = false
					continue
				}
				op := "L"
				if !pen {
					op = "M"
				}
				fmt.Fprintf(&path, "%s%.1f,%.1f ", op, x(i), y(v))
				pen = true
				fmt.Fprintf(&b, `<circle class="s%d" cx="%.1f" cy="%.1f" r="2.5"><title>`, s%maxSeriesColors, x(i), y(v))
				escape(&b, fmt.Sprintf("%s, %s: %s", ser.Name, formatBucket(c.Buckets[i], c.Buckets), formatValue(v, c.Unit)))
				b.WriteString(`</title></circle>`)
			}
			if path.Len() > 0 {
				fmt.Fprintf(&b, `<path class="line s%d" d="%s"/>`, s%maxSeriesColors, strings.TrimSpace(path.String()))
			}
		}
	}
	// The legend, three entries a row.
	for s, ser := range c.Series {
		lx := padLeft + (s%3)*((chartW-padLeft)/3)
		ly := chartH + legendRow*(s/3) + 4
		fmt.Fprintf(&b, `<rect class="s%d" x="%d" y="%d" width="10" height="10"/><text class="legend" x="%d" y="%d">`, s%maxSeriesColors, lx, ly, lx+14, ly+9)
		escape(&b, ser.Name)
		b.WriteString(`</text>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// chartTop is the top of a chart's value axis: a round number above its
// largest value (or largest stack).
func chartTop(c analytics.Chart) float64 {
	most := 0.0
	for i := range c.Buckets {
		stack := 0.0
		for _, s := range c.Series {
			v := s.Values[i]
			if math.IsNaN(v) {
				continue
			}
			if c.Stacked {
				stack += v
			} else {
				most = max(most, v)
			}
		}
		most = max(most, stack)
	}
	if c.Unit == "%" {
		return 100
	}
	if most <= 0 {
		return 1
	}
	step := math.Pow(10, math.Floor(math.Log10(most)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if most <= m*step {
			return m * step
		}
	}
	return 10 * step
}

// formatValue writes a value with its unit, short.
func formatValue(v float64, unit string) string {
	switch unit {
	case "s":
		if v >= 120 {
			return fmt.Sprintf("%.0fm", v/60)
		}
		return trimFloat(v) + "s"
	case "%":
		return fmt.Sprintf("%.0f%%", v)
	case "cost":
		return trimFloat(v)
	}
	return trimFloat(v)
}

func trimFloat(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// formatBucket names a bucket: its date, or its hour when buckets are
// shorter than a day.
func formatBucket(t time.Time, all []time.Time) string {
	if len(all) > 1 && all[1].Sub(all[0]) < 24*time.Hour {
		return t.UTC().Format("Jan 2 15:04")
	}
	return t.UTC().Format("Jan 2")
}
