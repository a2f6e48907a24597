{ web = { deployment.targetHost = "10.0.0.1" }; }
