# Include this file last in a Snakefile whose rules call dnabert2 wrappers: each such rule's named
# input, output and params are checked as its wrapper checks them when its job starts, but here,
# before any job runs (a dry run included). dnabert2.wrappers.check_rules says how.
import sys

sys.path.insert(0, str(Path(workflow.current_basedir).parent))

from dnabert2.wrappers import check_rules

check_rules(workflow)
