"""Multi-machine mode (`dikkat[scale]`): inference replicas on Ray Serve; imports are lazy."""
