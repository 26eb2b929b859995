module github.com/gretacore/parity

go 1.26
