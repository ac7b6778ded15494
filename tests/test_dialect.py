from dasktrain.io._dialect import CLOUDBERRY, GREENPLUM, POSTGRESQL, dialect_from


def test_dialect_is_read_from_the_catalog_and_version():
    assert dialect_from(160002, "PostgreSQL 16.2 on x86_64", False).name == POSTGRESQL
    assert dialect_from(90426, "PostgreSQL 9.4.26 (Greenplum Database 6.26.0)", True).name == GREENPLUM
    assert dialect_from(140004, "PostgreSQL 14.4 (Apache Cloudberry 1.6.0)", True).name == CLOUDBERRY


def test_only_mpp_dialects_are_distributed():
    assert dialect_from(120012, "Greenplum 7", True).distributed
    assert not dialect_from(160002, "PostgreSQL 16.2", False).distributed
    assert dialect_from(160002, "PostgreSQL 16.2", False).supports_tid_range_scan
    assert not dialect_from(130000, "PostgreSQL 13", False).supports_tid_range_scan
