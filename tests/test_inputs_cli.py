"""Every name a command uses is checked before it connects, starts a cluster or trains (issue 22, item 9).

``dasktrain fit --name my-model`` trained all its iterations and then failed to save. These commands point at a
database that does not exist: a command that got past its checks would say it cannot connect.
"""

import pytest

from dasktrain import cli

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
FIT = ["fit", "--data", "d", "--model-arch-table", "a", "--model-id", "1", "--compile", "loss='mse'",
       "--iterations", "1", "--model-table", "m"]  # fmt: skip
GROUPS = ["fit-groups", "--data", "d", "--by", "g", "--model-arch-table", "a", "--model-id", "1", "--compile",
          "loss='mse'", "--iterations", "1", "--model-table", "m"]  # fmt: skip
SELECT = ["select", "--data", "d", "--validation", "v", "--model-arch-table", "a", "--model-id", "1", "--compile",
          "loss='mse'", "--iterations", "1", "--model-table", "m"]  # fmt: skip
PREDICT = ["predict", "--model-table", "m", "--source", "s", "--output", "o"]
EVALUATE = ["evaluate", "--model-table", "m", "--table", "t"]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*FIT, "--name", "my-model"], "Invalid model name 'my-model'"),
        ([*FIT, "--model-table", "my models"], "Invalid table name 'my models'"),
        ([*FIT, "--validation", "a;b"], "Invalid table name 'a;b'"),
        ([*FIT, "--x", "x1, x-2"], "Invalid column name 'x-2'"),
        ([*FIT, "--y", "1y"], "Invalid column name '1y'"),
        ([*GROUPS, "--name", "my-groups"], "Invalid model name 'my-groups'"),
        ([*GROUPS, "--by", "a b"], "Invalid column name 'a b'"),
        ([*SELECT, "--name", "my-search"], "Invalid model name 'my-search'"),
        ([*PREDICT, "--output", "out put"], "Invalid table name 'out put'"),
        ([*PREDICT, "--id", "my-id"], "Invalid column name 'my-id'"),
        ([*PREDICT, "--name", "x" * 5000], "--name is 5000 characters long"),
        ([*EVALUATE, "--output-table", "a.b.c"], "Invalid table name 'a.b.c'"),
    ],
)
def test_a_bad_name_is_refused_before_any_work(capsys, argv, message):
    assert cli.main([*argv, "--dsn", NOWHERE, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "connect" not in err.lower() and len(err) < 400, err


def test_a_nul_character_in_a_job_file_is_refused(capsys, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text('description: "a\\0b"\n')
    assert cli.main([*FIT, "--job", str(job), "--dsn", NOWHERE]) == 2
    assert "description holds a NUL character" in capsys.readouterr().err
