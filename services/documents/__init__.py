"""The log form (loggskjema) as Word and PDF."""
