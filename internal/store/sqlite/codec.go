package sqlite

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// boolInt encodes a bool column.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
