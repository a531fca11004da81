"""LangGraph checkpoints on DynamoDB (large values spill to S3), with a compare-and-set on each
thread's head so that a Step Lambda invoked twice for the same superstep can never fork the thread.

`saver` is the BaseCheckpointSaver; `commits` how a checkpoint is committed (fence, group commit);
`keys` the table's key layout; `spill` the S3 objects of large values.
"""

from stepgraph.storage.checkpoints.commits import Fence, LeaseCondition
from stepgraph.storage.checkpoints.saver import DynamoDBSaver
from stepgraph.storage.errors import HeadConflict

__all__ = ["DynamoDBSaver", "Fence", "HeadConflict", "LeaseCondition"]
