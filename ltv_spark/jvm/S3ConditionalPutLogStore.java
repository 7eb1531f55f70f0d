package ltvspark.delta;

import com.amazonaws.services.s3.AmazonS3;
import com.amazonaws.services.s3.model.AmazonS3Exception;
import com.amazonaws.services.s3.model.ObjectMetadata;
import com.amazonaws.services.s3.model.PutObjectRequest;
import io.delta.storage.HadoopFileSystemLogStore;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.util.Iterator;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.S3AFileSystem;

/**
 * A Delta log store for s3a:// that is safe with many drivers: each commit file is created with
 * S3's conditional PUT ("If-None-Match: *", on AWS S3 since August 2024, and on MinIO and moto).
 *
 * <p>Delta commits version N by creating _delta_log/N.json only if it is absent; the writer that
 * finds it present re-reads the log and retries, or reports the conflict. Delta's own
 * S3SingleDriverLogStore checks for the file and then writes it, which is safe inside one driver
 * only. Here S3 itself refuses the second create, so two jobs on two clusters (or two processes
 * on one machine) committing to one table never overwrite each other. Reading and listing are
 * Hadoop's (S3 listings have been strongly consistent since December 2020).
 *
 * <p>Set with {@code spark.delta.logStore.s3a.impl=ltvspark.delta.S3ConditionalPutLogStore}.
 */
public class S3ConditionalPutLogStore extends HadoopFileSystemLogStore {

  /** S3's answer to a conditional write that lost against an existing object. */
  private static final int PRECONDITION_FAILED = 412;
  /** S3's answer while another conditional write on the same key is in flight: try again. */
  private static final int CONFLICT = 409;
  private static final int CONFLICT_RETRIES = 5;

  public S3ConditionalPutLogStore(Configuration initHadoopConf) {
    super(initHadoopConf);
  }

  @Override
  public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
      throws IOException {
    FileSystem fs = path.getFileSystem(hadoopConf);
    if (!(fs instanceof S3AFileSystem)) {
      throw new IOException(
          "S3ConditionalPutLogStore writes s3a:// paths only, not " + path + " (" + fs.getClass() + ")");
    }
    S3AFileSystem s3a = (S3AFileSystem) fs;
    byte[] content = joinLines(actions);
    String key = s3a.pathToKey(s3a.makeQualified(path));
    AmazonS3 client = s3a.getAmazonS3ClientForTesting("conditional put of a Delta commit");
    for (int attempt = 1; ; attempt++) {
      try {
        client.putObject(request(s3a.getBucket(), key, content, overwrite));
        return;
      } catch (AmazonS3Exception error) {
        if (!overwrite && error.getStatusCode() == PRECONDITION_FAILED) {
          throw new FileAlreadyExistsException(path.toString());
        }
        if (error.getStatusCode() != CONFLICT || attempt >= CONFLICT_RETRIES) {
          throw new IOException("writing " + path + " failed: " + error.getMessage(), error);
        }
        sleep(100L * attempt);
      }
    }
  }

  /** A PUT is all or nothing: a reader never sees half a commit file. */
  @Override
  public Boolean isPartialWriteVisible(Path path, Configuration hadoopConf) {
    return false;
  }

  private static PutObjectRequest request(String bucket, String key, byte[] content, boolean overwrite) {
    ObjectMetadata metadata = new ObjectMetadata();
    metadata.setContentLength(content.length);
    metadata.setContentType("application/json");
    PutObjectRequest request =
        new PutObjectRequest(bucket, key, new ByteArrayInputStream(content), metadata);
    if (!overwrite) {
      request.putCustomRequestHeader("If-None-Match", "*");
    }
    return request;
  }

  private static byte[] joinLines(Iterator<String> actions) throws IOException {
    ByteArrayOutputStream buffer = new ByteArrayOutputStream();
    while (actions.hasNext()) {
      buffer.write((actions.next() + "\n").getBytes(StandardCharsets.UTF_8));
    }
    return buffer.toByteArray();
  }

  private static void sleep(long millis) throws IOException {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while retrying a commit", interrupted);
    }
  }
}
