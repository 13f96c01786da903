package predictor.minidfs;

import java.io.File;
import java.nio.file.Files;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileUtil;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * One NameNode and one DataNode on 127.0.0.1, for tests. Usage: {@code MiniDfs [namenode-port]} (0 or
 * none: any free port). Prints {@code READY hdfs://127.0.0.1:PORT http=127.0.0.1:PORT} once it can
 * serve, and shuts down when its standard input closes, so a test that dies still takes the cluster
 * with it.
 */
public final class MiniDfs {
  public static void main(String[] args) throws Exception {
    int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
    // NB: without an explicit base directory MiniDFSCluster writes under ./build/test/data.
    File base = Files.createTempDirectory("minidfs-").toFile();
    Configuration conf = new Configuration();
    // Clients (our Rust tests) run as the OS user; let them write anywhere without a superuser setup.
    conf.setBoolean("dfs.permissions.enabled", false);
    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf, base)
            .nameNodePort(port)
            .nameNodeHttpPort(0)
            .numDataNodes(1)
            .build();
    try {
      cluster.waitActive();
      // The web UI port too: tests point a client at it, as a user might by mistake.
      System.out.println(
          "READY hdfs://127.0.0.1:" + cluster.getNameNodePort()
              + " http=127.0.0.1:" + cluster.getNameNode().getHttpAddress().getPort());
      System.out.flush();
      while (System.in.read() != -1) {
        // Anything written is ignored: only end of input stops the cluster.
      }
    } finally {
      cluster.shutdown(true);
      FileUtil.fullyDelete(base);
    }
  }
}
