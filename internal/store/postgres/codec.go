package postgres

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row of rows with scan; it closes rows.
func collect[T any](rows scannerRows, err error, scan func(scanner) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scannerRows is what collect needs of pgx.Rows.
type scannerRows interface {
	scanner
	Next() bool
	Err() error
	Close()
}
