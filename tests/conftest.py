pytest_plugins = ["dasktrain.testing"]
