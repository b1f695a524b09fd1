"""Scale-out over Kafka: replicas publish pane partials, one aggregator per model judges them."""
