"""Application status lookup by receipt code (mã hồ sơ): codes, sources, calendar, answers."""
